/**
 * What doctor asks the system beyond files, behind a seam so tests can give fakes.
 *
 * @module
 */
import { statfsSync } from "node:fs";

export interface DoctorSystem {
  /** Bytes an unprivileged user may still write on the filesystem holding `path`. */
  freeBytes(path: string): number;
  /** The id of the filesystem (device) holding `path`. */
  device(path: string): number;
}

export const realSystem: DoctorSystem = {
  freeBytes(path) {
    const stats = statfsSync(path);
    return stats.bavail * stats.bsize;
  },
  device(path) {
    const dev = Deno.statSync(path).dev;
    if (dev === null) throw new Error(`cannot tell the filesystem of "${path}"`);
    return dev;
  },
};
