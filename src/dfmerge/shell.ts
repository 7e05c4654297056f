/** POSIX shell quoting for words dfmerge puts into a command line (worker entrypoints, lm-eval invocations). */

/** `s` as one shell word: bare when it holds only safe characters, else in single quotes ('\'' for a quote). */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_./:=+,@%-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
