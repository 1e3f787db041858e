/**
 * `rekey <url>`: wraps an encrypted backup's data key anew (a new passphrase, another age
 * recipient), replacing every old wrap; no record is touched. With `--key-file DIR` it also
 * writes the plugin's key file, e.g. after a node's lightning dir was rebuilt.
 *
 * @module
 */
import { readChain } from "../format/chain.ts";
import { writeFileDurably } from "../fs/durable.ts";
import { wrapKey, WRAPPED_KEY_NAME } from "../crypto/wrapped_key.ts";
import { KEY_FILE, writeKeyFile } from "../crypto/key_file.ts";
import {
  type CommandSpec,
  consoleOutput,
  Exit,
  fileBackupPath,
  type Output,
  runCommand,
  userPath,
} from "./args.ts";
import {
  askNewPassphrase,
  givenPassphrase,
  NEW_PASSPHRASE_ENV,
  type Prompt,
  SECRET_HELP,
  SECRET_OPTIONS,
  terminalPrompt,
} from "./secrets.ts";
import { unlockDir } from "./unlock.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { v2Credential } from "../backends/socket/credential.ts";
import { socketUrl } from "../backends/socket/backend.ts";
import { CopiedBackupReader } from "../backends/socket/copy_reader.ts";
import { sendWrappedKey } from "../backends/socket/rekey.ts";
import { DEFAULT_RETRY_POLICY } from "../backends/socket/options.ts";

const ACTION = "Cannot rekey backup";

export const REKEY_HELP =
  `Usage: cln-backup rekey <url> [--new-passphrase-file F] [--new-recipient AGE1...]
                        [--key-file DIR]

Wraps the data key of the encrypted backup at <url> (file:///abs/path, or a server's over
wire v2 with CLN_BACKUP_CREDENTIAL: its key.json is fetched and the new one sent back) for a
new passphrase
and/or age recipient, replacing every wrap it had: afterwards only the new secrets open it.
No record is re-encrypted (the data key stays; the plugin's key file stays valid), so it is
quick and safe beside a running plugin. key.json is replaced atomically.

The current secret opens the key first (below). The new passphrase comes from
CLN_BACKUP_NEW_PASSPHRASE, --new-passphrase-file F, or is asked twice on a terminal.

Options:
  --new-passphrase-file F  the new passphrase, the first line of F
  --new-recipient AGE1...  wrap the key for this age X25519 recipient
  --key-file DIR           also write the plugin's key file DIR/backup.key (mode 0600), for
                           a lightning dir that lost it; alone, it rewraps nothing
  --passphrase-file F, --identity F  the current secret
  -h, --help               show this help

${SECRET_HELP}`;

export const REKEY_SPEC: CommandSpec = {
  name: "rekey",
  help: REKEY_HELP,
  options: {
    ...SECRET_OPTIONS,
    "new-passphrase-file": { type: "string" },
    "new-recipient": { type: "string" },
    "key-file": { type: "string" },
  },
  positionals: ["url"],
};

/** The new passphrase given, or asked twice on a terminal when nothing new is given. */
async function newPassphrase(
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
): Promise<string | undefined> {
  const given = givenPassphrase(values["new-passphrase-file"], NEW_PASSPHRASE_ENV);
  if (given !== undefined || values["new-recipient"] !== undefined) return given;
  const typed = await askNewPassphrase(prompt, "New passphrase", ACTION);
  if (typed === undefined) {
    throw new Error(
      `${ACTION}: give the new secret: CLN_BACKUP_NEW_PASSPHRASE, --new-passphrase-file F, ` +
        `--new-recipient AGE1..., or run it on a terminal`,
    );
  }
  return typed;
}

export async function rekey(
  args: string[],
  output: Output = consoleOutput,
  prompt: Prompt = terminalPrompt,
): Promise<number> {
  return await runCommand(REKEY_SPEC, args, output, async ({ values, positionals }) => {
    const url = positionals[0];
    if (parseBackupUrl(url).scheme !== "socket") {
      const path = fileBackupPath(url, ACTION);
      await rekeyAt(path, `"${path}"`, values, prompt, output, (wrapped) => {
        writeFileDurably(path, WRAPPED_KEY_NAME, wrapped);
        return Promise.resolve();
      });
      return Exit.Ok;
    }
    // A server's backup: its key.json is read from a copy, and the new one sent back.
    const credential = v2Credential(url);
    if (!credential) {
      throw new Error(
        `${ACTION}: a server's backup is rekeyed over wire v2: name the node's credential in ` +
          `CLN_BACKUP_CREDENTIAL`,
      );
    }
    const target = socketUrl(url);
    const { timeoutMs } = DEFAULT_RETRY_POLICY;
    const copy = await CopiedBackupReader.fetch(url, target, timeoutMs, credential);
    try {
      await rekeyAt(
        copy.local.dir,
        url,
        values,
        prompt,
        output,
        (wrapped) => sendWrappedKey(target, credential, wrapped, timeoutMs),
      );
    } finally {
      copy.close();
    }
    return Exit.Ok;
  });
}

/**
 * Rewraps the key of the backup in `dir` (named `where`), storing the new key.json with
 * `store`, and writes the key file `--key-file` names.
 */
async function rekeyAt(
  dir: string,
  where: string,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
  output: Output,
  store: (wrapped: Uint8Array) => Promise<void>,
): Promise<void> {
  const chain = readChain(dir);
  if (chain.keyId === undefined) {
    throw new Error(
      `${ACTION}: ${where} is not encrypted: "cln-backup upgrade --encrypt" makes an ` +
        `encrypted copy of a file backup`,
    );
  }
  const key = (await unlockDir(dir, values, prompt))!;
  const keyFileOnly = values["key-file"] !== undefined && values["new-recipient"] === undefined &&
    values["new-passphrase-file"] === undefined && Deno.env.get(NEW_PASSPHRASE_ENV) === undefined;
  if (!keyFileOnly) {
    const passphrase = await newPassphrase(values, prompt);
    const recipient = values["new-recipient"];
    const recipients = typeof recipient === "string" ? [recipient] : [];
    await store(await wrapKey(key, chain.backupId, { passphrase, recipients }));
    const what = [passphrase !== undefined ? "a new passphrase" : [], ...recipients].flat();
    output.out(
      `Rewrapped the key of ${where} for ${what.join(" and ")}; the old secrets no longer ` +
        `open it. No record changed`,
    );
  }
  if (typeof values["key-file"] === "string") {
    const keyDir = userPath(values["key-file"]);
    writeKeyFile(keyDir, key);
    output.out(`Wrote the plugin's key file "${keyDir}/${KEY_FILE}" (mode 0600)`);
  }
}
