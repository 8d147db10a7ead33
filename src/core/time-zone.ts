/**
 * Whether `name` is an IANA time zone this runtime knows ('UTC',
 * 'Europe/Berlin'); a fixed offset such as '+01:00' is not one (it has no
 * daylight-saving rules). Uses the runtime's Intl, not the calendar library,
 * so that validating a config does not load the library for every command.
 */
export function isTimeZoneName(name: string): boolean {
  let known = checked.get(name);
  if (known === undefined) {
    known = /^[A-Za-z]/.test(name) && accepted(name);
    checked.set(name, known);
  }
  return known;
}

/** Asked once per name and process: a DateTimeFormat costs milliseconds, and the calendar asks per slot. */
const checked = new Map<string, boolean>();

function accepted(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
