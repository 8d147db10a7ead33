/**
 * Settles once everything written to `stream` so far has been handed on
 * ('drain'), or when the stream fails or closes: a reader that is gone never
 * drains, and waiting for it would hang the run.
 */
export function drained(stream: NodeJS.WritableStream & { destroyed?: boolean; writableLength?: number }): Promise<void> {
  if (stream.destroyed || stream.writableLength === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('error', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('error', done);
    stream.on('close', done);
  });
}
