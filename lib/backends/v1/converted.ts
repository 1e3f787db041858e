/**
 * Where `upgrade` puts a Python plugin v1 file's converted backup unless told otherwise: the
 * v1 path without `.dbak`, plus `.clnb`. The v1 file stays as it was, so readers of it check
 * there for the backup the node went on with.
 *
 * @module
 */

export function convertedPath(v1Path: string): string {
  return `${v1Path.replace(/\.dbak$/, "")}.clnb`;
}
