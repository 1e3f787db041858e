/**
 * S3 backups set up for tests against a test gateway ({@linkcode Rgw}): a node whose backup
 * `init` made, a backup from a base at version 1, a writer whose log lines are kept, and the
 * CLI's `compact` run on one as an operator runs it.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { assertEquals } from "./assert.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./cli_testing.ts";
import { SCHEMA } from "./plugin_session.ts";
import { type Rgw, writeCredentials } from "./rgw.ts";
import { init } from "../../lib/cli/init.ts";
import { S3Backend, type S3BackendOptions } from "../../lib/backends/s3/backend.ts";
import { createS3Backup } from "../../lib/backends/s3/create.ts";
import type { S3RetryPolicy } from "../../lib/backends/s3/retry.ts";

/**
 * Runs `body` on a node dir of the recorded "restart" run, its keys in its credentials file
 * and its backup made by `init` on a new bucket of `s` at `url`; the dir is removed after.
 */
export async function withInitS3Node(
  s: Rgw,
  body: (dir: string, url: string) => Promise<void>,
): Promise<void> {
  const dir = makeNodeDir("restart");
  try {
    writeCredentials(dir, s.credentials);
    const url = s.url(await s.bucket());
    const output = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.transcript);
    await body(dir, url);
  } finally {
    removeNodeDir(dir);
  }
}

/**
 * A backup on a new bucket of `s` whose base is a node's database at version 1 (plugin
 * session's SCHEMA), no change after it; its snapshot is made in `scratch`, then removed.
 */
export async function s3BackupAtVersion1(
  s: Rgw,
  scratch: string,
  policy: S3RetryPolicy,
): Promise<string> {
  const url = s.url(await s.bucket());
  const snapshot = `${scratch}/snapshot.sqlite3`;
  const db = new DatabaseSync(snapshot);
  db.exec(SCHEMA.join(";"));
  db.exec("UPDATE vars SET intval = 1 WHERE name = 'data_version'");
  db.close();
  await createS3Backup(url, s.credentials, { version: 1, path: snapshot }, policy);
  Deno.removeSync(snapshot);
  return url;
}

/** Connects a writer to `url` whose log lines, as `level: message`, are kept in `logs`. */
export async function connectLogged(
  url: string,
  options: Omit<S3BackendOptions, "log">,
): Promise<{ backend: S3Backend; logs: string[] }> {
  const logs: string[] = [];
  const backend = await S3Backend.connect(url, {
    ...options,
    log: (level, message) => logs.push(`${level}: ${message}`),
  });
  return { backend, logs };
}

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** `cln-backup compact ARGS` in a process of its own, with `s`'s keys in its environment. */
export async function runCompact(
  s: Rgw,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "compact", ...args],
    env: {
      NO_COLOR: "1",
      AWS_ACCESS_KEY_ID: s.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s.credentials.secretAccessKey,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}
