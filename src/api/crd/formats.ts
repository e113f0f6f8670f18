/** The string and number formats custom resource validation checks; unknown formats are accepted. */

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_LIMIT = 2 ** 63;

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOSTNAME =
  /^(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$/;
const EMAIL = /^[^\s@]+@[^\s@]+$/;
const MAC = /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/;
const DURATION = /^[-+]?(0|(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))*$/;

function validDate(y: string, m: string, d: string): boolean {
  const month = Number(m);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1) return false;
  const days = new Date(Date.UTC(Number(y), month, 0)).getUTCDate();
  return day <= days;
}

function isIPv6(s: string): boolean {
  if (!s.includes(':') || !/^[0-9a-fA-F:.]+$/.test(s)) return false;
  try {
    new URL(`http://[${s}]/`);
    return true;
  } catch {
    return false;
  }
}

function isCidr(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return false;
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits)) return false;
  const n = Number(bits);
  if (IPV4.test(ip)) return n <= 32;
  return isIPv6(ip) && n <= 128;
}

/** Whether a string satisfies a format; formats kedge does not know are satisfied. */
export function checkStringFormat(format: string, value: string): boolean {
  switch (format) {
    case 'date': {
      const m = DATE.exec(value);
      return m !== null && validDate(m[1]!, m[2]!, m[3]!);
    }
    case 'date-time': {
      const m = DATE_TIME.exec(value);
      return (
        m !== null &&
        validDate(m[1]!, m[2]!, m[3]!) &&
        Number(m[4]) < 24 &&
        Number(m[5]) < 60 &&
        Number(m[6]) < 61
      );
    }
    case 'byte':
      return BASE64.test(value);
    case 'uuid':
      return UUID.test(value);
    case 'ipv4':
      return IPV4.test(value);
    case 'ipv6':
      return isIPv6(value);
    case 'cidr':
      return isCidr(value);
    case 'hostname':
      return HOSTNAME.test(value);
    case 'email':
      return EMAIL.test(value);
    case 'mac':
      return MAC.test(value);
    case 'duration':
      return DURATION.test(value);
    case 'uri':
      return URL.canParse(value);
    default:
      return true;
  }
}

/** Whether a number satisfies an integer format (int32 and int64 ranges). */
export function checkNumberFormat(format: string, value: number): boolean {
  switch (format) {
    case 'int32':
      return Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX;
    case 'int64':
      return Number.isInteger(value) && value >= -INT64_LIMIT && value < INT64_LIMIT;
    default:
      return true;
  }
}
