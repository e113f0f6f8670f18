/**
 * A user's own mapper, as docs/mappers.md shows it: protocol `file` reads each property from a file
 * (a sysfs value such as /sys/class/thermal/thermal_zone0/temp, or a file another program keeps
 * current) every collectCycle, and writes desired values of ReadWrite properties back to it.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { DeviceState, Mapper, MapperProperty } from '../types.ts';
import { formatNumber, parseDesired, writeRefused } from '../values.ts';

const pathOf = (p: MapperProperty) => p.visitor['path'] as string;

export const fileMapper: Mapper = {
  protocol: 'file',

  validate(device) {
    return device.properties
      .filter((p) => typeof p.visitor['path'] !== 'string')
      .map((p) => `property ${p.name}: visitor.path must name a file`);
  },

  async open(device, sink) {
    // Online while every file can be read; the device state changes only when that does.
    const failing = new Set<string>();
    let state: DeviceState = 'unknown';
    const setState = () => {
      const next = failing.size === 0 ? 'online' : 'offline';
      if (next === state) return;
      state = next;
      sink.state(state, new Date());
    };
    const read = async (p: MapperProperty) => {
      try {
        const text = (await readFile(pathOf(p), 'utf8')).trim();
        const scale = Number(p.visitor['scale'] ?? 1);
        const value =
          p.type === 'int' || p.type === 'float' || p.type === 'double'
            ? formatNumber(Number(text) * scale)
            : text;
        failing.delete(p.name);
        setState();
        sink.reported(p.name, value, new Date());
      } catch (err) {
        failing.add(p.name);
        setState();
        sink.error(`Cannot read ${pathOf(p)}: ${(err as Error).message}`, p.name);
      }
    };
    const timers = device.properties.map((p) => {
      void read(p);
      return setInterval(() => void read(p), p.collectCycleMs || 1000);
    });
    return {
      async write(name, value) {
        const p = device.properties.find((q) => q.name === name);
        if (p === undefined) throw writeRefused(name, `Device ${device.name} has no property ${name}`, value);
        if (p.accessMode !== 'ReadWrite') throw writeRefused(name, `Property ${name} is ReadOnly`, value);
        parseDesired(p, value); // refuses a value of the wrong type or outside minimum/maximum
        await writeFile(pathOf(p), `${value}\n`);
        await read(p);
      },
      async close() {
        for (const t of timers) clearInterval(t);
      },
    };
  },
};
