/** Progress lines on stderr: rewritten in place on a terminal, one line per ~10% otherwise. */
export function progressReporter(label: string): { update(done: number, total: number): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let lastTenth = -1;
  return {
    update(done, total) {
      if (tty) {
        process.stderr.write(`\r${label}: ${done}/${total}`);
        return;
      }
      const tenth = Math.floor((10 * done) / Math.max(1, total));
      if (tenth !== lastTenth || done === total) {
        lastTenth = tenth;
        process.stderr.write(`${label}: ${done}/${total}\n`);
      }
    },
    end() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}
