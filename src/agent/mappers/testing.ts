/**
 * Test helpers for mappers (tests in any layer may use them): a sink that records what a session
 * reports and lets a test await a condition instead of sleeping.
 */
import type { DeviceState, MapperProperty, MapperSink } from './types.ts';

/** A maker of ReadOnly test properties polled every `collectCycleMs` (override anything through `extra`). */
export function propertyMaker(collectCycleMs: number) {
  return (
    name: string,
    type: MapperProperty['type'],
    visitor: Record<string, unknown>,
    extra: Partial<MapperProperty> = {},
  ): MapperProperty => ({ name, type, accessMode: 'ReadOnly', collectCycleMs, visitor, ...extra });
}

export interface Reading {
  readonly property: string;
  readonly value: string;
  readonly at: Date;
}

/** A MapperSink that records every call and wakes waiters on each. */
export class RecordingSink implements MapperSink {
  readonly readings: Reading[] = [];
  readonly states: DeviceState[] = [];
  readonly errors: { message: string; property: string | undefined }[] = [];
  readonly #waiters = new Set<() => void>();

  reported(property: string, value: string, at: Date): void {
    this.readings.push({ property, value, at });
    this.#wake();
  }

  state(state: DeviceState): void {
    this.states.push(state);
    this.#wake();
  }

  error(message: string, property?: string): void {
    this.errors.push({ message, property });
    this.#wake();
  }

  /** Every value reported for a property, oldest first. */
  values(property: string): string[] {
    return this.readings.filter((r) => r.property === property).map((r) => r.value);
  }

  /** The last value reported for a property. */
  last(property: string): string | undefined {
    return this.readings.findLast((r) => r.property === property)?.value;
  }

  /** The last state reported. */
  get lastState(): DeviceState | undefined {
    return this.states.at(-1);
  }

  /** Resolves when `check` holds; rejects after `timeoutMs` with what was recorded, so a failure says why. */
  waitFor(what: string, check: (sink: RecordingSink) => boolean, timeoutMs = 10_000): Promise<void> {
    if (check(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = () => {
        if (!check(this)) return;
        this.#waiters.delete(waiter);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(
          new Error(
            `Timed out waiting for ${what}; states ${JSON.stringify(this.states)}, last readings ${JSON.stringify(this.readings.slice(-6).map((r) => `${r.property}=${r.value}`))}, errors ${JSON.stringify(this.errors.slice(-4))}`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}
