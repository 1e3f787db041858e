/**
 * A real S3 server for tests: Ceph's RADOS Gateway on loopback, started by scripts/rgw.sh
 * in a temporary directory (about 2.5 s, about 140 MB) and stopped by its PIDs. The test
 * files of a run share one (shared_rgw.ts), each test on a bucket of its own.
 *
 * `CLN_BACKUP_TEST_RGW_PORT` fixes the gateway's port (else a free one): a port in use makes
 * the start fail as it would where RGW cannot run (tests/rgw_skip_test.ts).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { S3Client, type S3Credentials } from "../../lib/backends/s3/client.ts";
import { signRequest } from "../../lib/backends/s3/sigv4.ts";
import { parseBackupUrl } from "../../lib/backends/url.ts";
import type { S3Url } from "../../lib/backends/s3/s3_url.ts";
import { freePort, waitListening } from "./server_process.ts";
import { CREDENTIALS_FILE } from "../../lib/backends/s3/credentials.ts";
import { S3BackupReader } from "../../lib/backends/s3/reader.ts";
import { restoreBackup } from "../../lib/backup/restore.ts";
import { dumpDatabase } from "./dump.ts";

const SCRIPT = new URL("../../scripts/rgw.sh", import.meta.url).pathname;

/**
 * Every test gateway's user has these keys: test files run in parallel in one process, whose
 * environment some of them set to their gateway's keys for the CLI commands they run (the
 * operator's way); keys of their own would change under each other's feet.
 */
const TEST_KEYS = {
  RGW_ACCESS_KEY: "clnbackuptestaccess0",
  RGW_SECRET_KEY: "clnbackuptestsecret0000000000000000000000",
};

function installed(tool: string): boolean {
  const { success } = new Deno.Command("sh", {
    args: ["-c", `command -v ${tool}`],
    stdout: "null",
    stderr: "null",
  }).outputSync();
  return success;
}

/** Why RGW cannot run here, or `undefined` when it can. */
export const rgwMissing: string | undefined = ["radosgw", "ceph-mon", "ceph-osd"].every(installed)
  ? undefined
  : "Ceph RGW is not installed (apt-get install radosgw ceph-mon ceph-osd ceph-common): " +
    "skipping the tests against a real S3 server";

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function readStat(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return "";
  }
}

/**
 * Removes what a failed start left in `dir`, moved aside first so that its name is free at
 * once (another test file may wait for it to go): a Ceph client the script started in the
 * background may still write there for a moment, and the error to report is the start's.
 */
async function removeLeft(dir: string): Promise<void> {
  const aside = `${dir}.failed-${crypto.randomUUID()}`;
  Deno.renameSync(dir, aside);
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      Deno.removeSync(aside, { recursive: true });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

export class Rgw {
  #gateway: Deno.ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly credentials: S3Credentials,
  ) {}

  /**
   * Starts a gateway in `dir` (a new temporary directory unless given; removed if the start
   * fails). It stops by itself when this process ends, even by SIGKILL.
   */
  static async start(dir = Deno.makeTempDirSync({ prefix: "cln-backup-rgw-" })): Promise<Rgw> {
    const port = Number(Deno.env.get("CLN_BACKUP_TEST_RGW_PORT")) || freePort();
    const output = await new Deno.Command(SCRIPT, {
      args: ["start", dir, String(freePort()), String(port), String(Deno.pid)],
      env: TEST_KEYS,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    if (!output.success) {
      await new Deno.Command(SCRIPT, { args: ["stop", dir] }).output();
      await removeLeft(dir);
      const errors = new TextDecoder().decode(output.stderr);
      // The script's first line of its own says what failed; Ceph's tools chatter on stderr.
      const reason = errors.split("\n").find((line) => line.startsWith("rgw.sh: "));
      throw new Error(`Cannot start RGW in "${dir}": ${reason ?? errors + text}`);
    }
    const value = (name: string) => new RegExp(`^${name}=(.*)$`, "m").exec(text)![1];
    return new Rgw(dir, port, {
      accessKeyId: value("access_key"),
      secretAccessKey: value("secret_key"),
    });
  }

  /** The gateway another test file of this process started in `dir` (see {@linkcode toJSON}). */
  static attach(dir: string, json: string): Rgw {
    const { port, credentials } = JSON.parse(json);
    return new Rgw(dir, port, credentials);
  }

  toJSON(): { port: number; credentials: S3Credentials } {
    return { port: this.port, credentials: this.credentials };
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** An s3:// URL on this server (through `port`, a proxy's, when given). */
  url(bucket: string, prefix = "node", port = this.port): string {
    return `s3://${bucket}/${prefix}?endpoint=http://127.0.0.1:${port}&path-style=1`;
  }

  client(url: string): S3Client {
    return new S3Client(parseBackupUrl(url) as S3Url, this.credentials, 10_000);
  }

  /** Creates a new bucket and returns its name (test files share a gateway: a random one). */
  async bucket(): Promise<string> {
    const name = `b${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
    await this.client(this.url(name)).createBucket();
    return name;
  }

  /**
   * Sets a bucket's `?lifecycle` or `?policy` to `body`, as its owner, as an operator would:
   * S3Client has no request for them (the plugin only reads a bucket's configuration).
   */
  async putBucketConfig(
    bucket: string,
    subresource: "lifecycle" | "policy",
    body: string,
  ): Promise<void> {
    const bytes = new TextEncoder().encode(body);
    const url = `${this.endpoint}/${bucket}?${subresource}=`;
    const headers = await signRequest({
      method: "PUT",
      url,
      headers: { "content-md5": createHash("md5").update(bytes).digest("base64") },
      payloadSha256: createHash("sha256").update(bytes).digest("hex"),
      keys: this.credentials,
      region: "us-east-1",
    });
    const response = await fetch(url, { method: "PUT", headers, body: bytes });
    const answer = await response.text();
    if (!response.ok) throw new Error(`PUT ?${subresource}: ${response.status} ${answer}`);
  }

  /** Runs `radosgw-admin` with this cluster's configuration. */
  async admin(...args: string[]): Promise<string> {
    const output = await new Deno.Command("radosgw-admin", {
      args: ["--conf", `${this.dir}/ceph.conf`, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(
        `radosgw-admin ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`,
      );
    }
    return new TextDecoder().decode(output.stdout);
  }

  /** The radosgw daemon's PID (the third scripts/rgw.sh started, or the last restart's). */
  #gatewayPid(): number {
    return Number(Deno.readTextFileSync(`${this.dir}/pids`).trim().split("\n").at(-1));
  }

  /** SIGKILLs radosgw alone (the cluster keeps the data), and waits until it is gone. */
  async killGateway(): Promise<void> {
    const pid = this.#gatewayPid();
    Deno.kill(pid, "SIGKILL");
    if (this.#gateway) {
      await this.#gateway.status;
      this.#gateway = undefined;
      return;
    }
    // Started by the script: not our child, so nothing reaps it here but its parent's exit.
    while (existsSync(`/proc/${pid}/stat`) && !/^\d+ \(.*\) Z/.test(readStat(pid))) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Starts radosgw again on the same port. */
  async startGateway(): Promise<void> {
    this.#gateway = new Deno.Command("radosgw", {
      args: ["--conf", `${this.dir}/ceph.conf`, "-f", "-n", "client.rgw.0"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    Deno.writeTextFileSync(`${this.dir}/pids`, `${this.#gateway.pid}\n`, { append: true });
    await waitListening(this.port);
  }

  async stop(): Promise<void> {
    this.#gateway?.kill("SIGKILL");
    await this.#gateway?.status;
    await new Deno.Command(SCRIPT, { args: ["stop", this.dir] }).output();
    Deno.removeSync(this.dir, { recursive: true });
  }
}

/** The dump of the S3 backup at `url` restored (into a file in `scratch`). */
export async function restoredFromS3(rgw: Rgw, url: string, scratch: string): Promise<string> {
  const reader = await S3BackupReader.fetch(url, rgw.credentials);
  const target = `${scratch}/restored-${crypto.randomUUID()}.sqlite3`;
  try {
    restoreBackup(reader, target);
  } finally {
    reader.close();
  }
  return dumpDatabase(target);
}

/** Writes keys where the plugin reads them: beside backup.lock, mode 0600 unless told. */
export function writeCredentials(dir: string, credentials: S3Credentials, mode = 0o600): void {
  const path = `${dir}/${CREDENTIALS_FILE}`;
  Deno.writeTextFileSync(
    path,
    `[default]\naws_access_key_id = ${credentials.accessKeyId}\n` +
      `aws_secret_access_key = ${credentials.secretAccessKey}\n`,
    { mode },
  );
  Deno.chmodSync(path, mode);
}
