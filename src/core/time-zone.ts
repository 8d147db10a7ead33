/**
 * Whether `name` is an IANA time zone this runtime knows ('UTC',
 * 'Europe/Berlin'); a fixed offset such as '+01:00' is not one (it has no
 * daylight-saving rules). Uses the runtime's Intl, not the calendar library,
 * so that validating a config does not load the library for every command.
 */
export function isTimeZoneName(name: string): boolean {
  if (!/^[A-Za-z]/.test(name)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
