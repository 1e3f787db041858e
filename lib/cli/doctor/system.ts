/**
 * What doctor asks the system beyond files, behind a seam so tests can give fakes.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { S3Client, type S3Credentials } from "../../backends/s3/client.ts";
import type { S3Url } from "../../backends/s3/s3_url.ts";
import { userGroups } from "./user_groups.ts";
import { type DeviceOf, deviceOf } from "../../backup/same_disk.ts";

export interface DoctorSystem {
  /** Bytes an unprivileged user may still write on the filesystem holding `path`. */
  freeBytes(path: string): number;
  /** The id of the filesystem (device) holding `path` (lib/backup/same_disk.ts). */
  device: DeviceOf;
  /** The lifecycle configuration of `url`'s bucket, as XML; `undefined` when it has none. */
  lifecycle(url: S3Url, credentials: S3Credentials): Promise<string | undefined>;
  /** The groups of user `uid` (see {@linkcode userGroups}). */
  groupsOf(uid: number): number[];
}

export const realSystem: DoctorSystem = {
  freeBytes(path) {
    const stats = statfsSync(path);
    return stats.bavail * stats.bsize;
  },
  device: deviceOf,
  lifecycle(url, credentials) {
    return new S3Client(url, credentials).lifecycle();
  },
  groupsOf: userGroups,
};
