// Characters that mean nothing to sh, bash or zsh anywhere in a word (no `~`, `=`, `!`, `{}` or
// globs, which expand in one shell or another).
const PLAIN = /^[A-Za-z0-9@%+:,./_-]+$/;

/**
 * One POSIX shell word that stands for exactly `value` when a command shown for copy-paste is run:
 * left bare when it is plain, otherwise in single quotes, where nothing is special except the
 * closing quote, written as '\'' (close, escaped quote, reopen). `$(…)`, backticks, `;`, spaces
 * and newlines stay text.
 */
export function shellQuote(value: string): string {
  if (PLAIN.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
