/**
 * What the helper prints comes partly from a server (codes, addresses, error texts). A terminal acts
 * on control characters: ESC starts sequences that clear the screen, draw links that lie about their
 * target (OSC 8) or write the clipboard (OSC 52); C1 codes such as U+009B do the same in one
 * character, CR overwrites a line, and bidi overrides reorder what a reader sees. None of it is
 * needed to show a URL or a message, so all of it goes.
 */
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const CONTROLS_BUT_NEWLINE = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export function hasControls(s: string): boolean {
  return new RegExp(CONTROLS.source).test(s);
}

/** One line of server-supplied text, without controls, cut at `max` characters (a server may send megabytes). */
export function printable(s: string, max = 300): string {
  const clean = s.replace(CONTROLS, '');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** The last line of defence before stderr/stdout: line breaks stay, every other control goes. */
export function forTerminal(text: string): string {
  return text.replace(CONTROLS_BUT_NEWLINE, '');
}
