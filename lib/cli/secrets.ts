/**
 * Where the CLI gets an encrypted backup's secrets: an environment variable, a file named on
 * the command line, or a prompt on the terminal, in that order.
 *
 * - `CLN_BACKUP_PASSPHRASE`, `--passphrase-file FILE` (its first line), or a prompt;
 * - `CLN_BACKUP_IDENTITY` (an `AGE-SECRET-KEY-1…`), `--identity FILE` (an age identity file).
 *
 * A file others may read is refused, as every secret file cln-backup reads.
 *
 * @module
 */
import { type EnvReader, userPath } from "../fs/user_path.ts";
import { type Secret, UnlockError } from "../crypto/wrapped_key.ts";
import { explainOsError } from "../fs/os_error.ts";
import { checkSecretMode } from "../fs/secret_mode.ts";
import { primitives } from "../crypto/data_key.ts";

export const PASSPHRASE_ENV = "CLN_BACKUP_PASSPHRASE";
export const IDENTITY_ENV = "CLN_BACKUP_IDENTITY";
/** `rekey`'s new passphrase. */
export const NEW_PASSPHRASE_ENV = "CLN_BACKUP_NEW_PASSPHRASE";

/** The options of the commands that read an encrypted backup. */
export const SECRET_OPTIONS = {
  "passphrase-file": { type: "string" },
  identity: { type: "string" },
} as const;

export const SECRET_HELP =
  `Encrypted backups (made with "init --encrypt") need their passphrase or age identity:
  CLN_BACKUP_PASSPHRASE=...   the passphrase, from the environment
  --passphrase-file FILE      the passphrase, the first line of FILE
  CLN_BACKUP_IDENTITY=...     an age identity (AGE-SECRET-KEY-1...), from the environment
  --identity FILE             an age identity file (as age-keygen writes)
  otherwise, on a terminal, it asks for the passphrase. A FILE others may read is refused
  (chmod 600 it); a pipe, such as <(pass show ...), is taken.`;

/**
 * Asks the operator for a line without echo; `undefined` when there is no terminal. The line
 * as earlier versions read the same keys, when it differs, goes into `earlier`.
 */
export type Prompt = (question: string, earlier?: string[]) => Promise<string | undefined>;

/**
 * The line typed on a raw terminal, read a byte at a time from `read` (`Deno.stdin.read`):
 * up to Enter or the end, Ctrl-C refused, each backspace (DEL, or ^H as some terminals send)
 * taking back the character before it. The line as earlier versions read it (DEL took back
 * one byte, ^H was kept), which a key they wrapped is wrapped for, goes into `earlier` when
 * it differs.
 */
export async function readTypedLine(
  read: (buffer: Uint8Array) => Promise<number | null>,
  earlier?: string[],
): Promise<string> {
  const bytes: number[] = [];
  const asEarlier: number[] = [];
  const buffer = new Uint8Array(1);
  for (;;) {
    const n = await read(buffer);
    if (n === null || buffer[0] === 13 || buffer[0] === 10) break;
    if (buffer[0] === 3) throw new Error("Cannot read the passphrase: interrupted");
    if (buffer[0] === 127) asEarlier.pop();
    else asEarlier.push(buffer[0]);
    if (buffer[0] === 127 || buffer[0] === 8) {
      // A character may be several UTF-8 bytes: its continuation bytes (10xxxxxx), then the
      // one that starts it. One byte alone left the rest, read as U+FFFD, in the passphrase.
      while (((bytes.pop() ?? 0) & 0xc0) === 0x80) continue;
    } else bytes.push(buffer[0]);
  }
  const line = new TextDecoder().decode(new Uint8Array(bytes));
  const earlierLine = new TextDecoder().decode(new Uint8Array(asEarlier));
  if (earlierLine !== line) earlier?.push(earlierLine);
  return line;
}

/** Reads a line from the terminal without echoing it. */
export const terminalPrompt: Prompt = async (question, earlier) => {
  if (!Deno.stdin.isTerminal()) return undefined;
  const encoder = new TextEncoder();
  Deno.stderr.writeSync(encoder.encode(question));
  Deno.stdin.setRaw(true);
  try {
    return await readTypedLine((buffer) => Deno.stdin.read(buffer), earlier);
  } finally {
    Deno.stdin.setRaw(false);
    Deno.stderr.writeSync(encoder.encode("\n"));
  }
};

/**
 * Reads a secret file the operator named; a relative path resolves against their directory
 * (under `deno task` too, which runs in the checkout), as backup-cli's grant for it does. One
 * others may read is refused, as every secret file is (lib/fs/secret_mode.ts); a pipe or a
 * terminal (`<(pass show …)`, /dev/stdin) is taken.
 */
function readSecretFile(path: string, what: string, env: EnvReader = Deno.env): string {
  const full = userPath(path, env);
  let info: Deno.FileInfo;
  let text: string;
  try {
    info = Deno.statSync(full);
    text = Deno.readTextFileSync(full);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? `there is no file "${full}": check the path`
      : explainOsError(error) ?? `${(error as Error).message}: check the path`;
    throw new Error(`Cannot read the ${what} file "${path}": ${why}`);
  }
  checkSecretMode(`the ${what} file`, full, `Cannot take the ${what}`, info);
  return text;
}

/** The age identities of an identity file's text (comments and blank lines skipped). */
function identitiesIn(text: string): string[] {
  return text.split("\n").map((line) => line.trim()).filter((line) =>
    line.startsWith("AGE-SECRET-KEY-")
  );
}

/**
 * The age identities the operator gave: an identity file's, else the environment's. One that
 * holds none, or a damaged one, is refused: passed over, it would end in a passphrase prompt
 * or "does not open the backup's key", which point elsewhere.
 */
async function givenIdentities(
  file: string | boolean | undefined,
  env: EnvReader = Deno.env,
): Promise<string[]> {
  if (typeof file === "string" && isAgeIdentity(file)) {
    // The identity itself in the file name's place: a secret, not repeated in the refusal.
    throw new Error(
      `Cannot unlock backup: --identity takes the path of an identity file, and was given an ` +
        `age identity (AGE-SECRET-KEY-1...): put it in a file (mode 0600), or in ` +
        `${IDENTITY_ENV}`,
    );
  }
  const text = typeof file === "string"
    ? readSecretFile(file, "identity", env)
    : env.get(IDENTITY_ENV);
  if (text === undefined) return [];
  const source = typeof file === "string" ? `"${file}"` : IDENTITY_ENV;
  const identities = identitiesIn(text);
  if (identities.length === 0) {
    throw new Error(
      `Cannot unlock backup: ${source} holds no age identity (AGE-SECRET-KEY-1...): give ` +
        `the identity age-keygen wrote, not its public key (age1...)`,
    );
  }
  for (const identity of identities) {
    try {
      await (await primitives()).ageRecipientOf(identity);
    } catch {
      throw new Error(
        `Cannot unlock backup: ${source} holds an AGE-SECRET-KEY-1... line that is not a ` +
          `whole age identity: copy it again from the file age-keygen wrote`,
      );
    }
  }
  return identities;
}

/**
 * The passphrase a file (its first line) or the environment gives, as meant, and as earlier
 * versions took it: a file saved with `\r\n` line ends (Windows, or an editor set so) ends its
 * line with `\r`, and one saved as "UTF-8" by Notepad or PowerShell 5 starts with a byte order
 * mark (U+FEFF), and so does a variable set from one (`$(cat file)` keeps both); neither is
 * the passphrase's, nor is either typed on a terminal.
 */
function passphraseGiven(
  file: string | boolean | undefined,
  variable: string,
  env: EnvReader,
): { passphrase: string; earlier: string[] } | undefined {
  const asWritten = typeof file === "string"
    ? readSecretFile(file, "passphrase", env).split("\n")[0]
    : env.get(variable);
  if (asWritten === undefined) return undefined;
  const marked = asWritten.replace(/\r$/, "");
  const passphrase = marked.replace(/^\uFEFF/, "");
  // What the versions that kept the mark, then the `\r` too, wrapped a key for.
  const earlier = [...new Set([marked, asWritten])].filter((p) => p !== passphrase);
  return { passphrase, earlier };
}

/** The passphrase the environment or a file gives; `undefined` when neither does. */
export function givenPassphrase(
  file: string | boolean | undefined,
  variable = PASSPHRASE_ENV,
  env: EnvReader = Deno.env,
): string | undefined {
  return passphraseGiven(file, variable, env)?.passphrase;
}

/**
 * Whether the operator gave a secret (an option or the environment, not a prompt): the
 * backup is then meant to be encrypted.
 */
export function secretGiven(values: Record<string, string | boolean | undefined>): boolean {
  return typeof values["passphrase-file"] === "string" || typeof values.identity === "string" ||
    Deno.env.get(PASSPHRASE_ENV) !== undefined || Deno.env.get(IDENTITY_ENV) !== undefined;
}

/**
 * The secrets given to open a backup's key; asks for a passphrase on a terminal when none is
 * given. Empty when there is nothing to try.
 */
export async function gatherSecrets(
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
  env: EnvReader = Deno.env,
): Promise<Secret[]> {
  const secrets: Secret[] = [];
  const identities = await givenIdentities(values.identity, env);
  secrets.push(...identities.map((identity) => ({ identity })));
  const given = passphraseGiven(values["passphrase-file"], PASSPHRASE_ENV, env);
  if (given !== undefined) {
    // No key is wrapped for an empty passphrase (init and rekey refuse one).
    if (given.passphrase !== "") secrets.push({ passphrase: given.passphrase });
    // A key wrapped by an earlier cln-backup, which kept the mark or the "\r", opens too.
    secrets.push(...given.earlier.map((passphrase) => ({ passphrase })));
    if (secrets.length === 0) {
      const where = typeof values["passphrase-file"] === "string"
        ? `the first line of "${values["passphrase-file"]}"`
        : PASSPHRASE_ENV;
      throw new UnlockError(
        `the passphrase given is empty (${where}): give the backup's passphrase`,
      );
    }
  }
  if (secrets.length === 0) {
    const earlier: string[] = [];
    const typed = await prompt("Passphrase of the backup: ", earlier);
    if (typed !== undefined) secrets.push({ passphrase: typed });
    // A key wrapped by an earlier cln-backup for what it read of the same keys opens too.
    secrets.push(...earlier.map((passphrase) => ({ passphrase })));
  }
  return secrets;
}

/** Whether `text` is an age identity (`AGE-SECRET-KEY-1…`): a secret, never to be echoed. */
export function isAgeIdentity(text: string): boolean {
  return text.trim().toUpperCase().startsWith("AGE-SECRET-KEY-");
}

/**
 * Checks the age recipients a data key is to be wrapped for, before anything is asked or
 * written: one that is not one is refused in one line starting with `action`. An identity
 * given in a recipient's place is a secret: the line says so and does not repeat it.
 */
export async function checkNewRecipients(action: string, recipients: string[]): Promise<void> {
  const p = await primitives();
  for (const recipient of recipients) {
    if (isAgeIdentity(recipient)) {
      throw new Error(
        `${action}: the recipient given is an age identity (AGE-SECRET-KEY-1...), the secret ` +
          `half: give its public key instead (age1..., the "public key:" line of the ` +
          `identity file); nothing was changed`,
      );
    }
    try {
      await p.ageEncrypt(new Uint8Array(0), recipient);
    } catch (error) {
      if (!(error instanceof p.AgeFormatError)) throw error;
      const shown = /^age1/i.test(recipient) ? `"${recipient}"` : "the recipient given";
      throw new Error(
        `${action}: ${shown} is not an age X25519 recipient: give the public key (age1...) ` +
          `age-keygen printed for the identity; nothing was changed`,
      );
    }
  }
}

/**
 * Refuses an empty new passphrase, or one that is not UTF-8, in one line starting with
 * `action`. Bytes that are not UTF-8 (a file saved as Latin-1, a terminal set so) read as
 * U+FFFD, every one alike: the key would be wrapped for that, which the passphrase typed on a
 * UTF-8 terminal never opens.
 */
export function checkNewPassphrase(action: string, passphrase: string | undefined): void {
  if (passphrase === "") {
    throw new Error(
      `${action}: the passphrase is empty: give a long random one (a password manager's, or ` +
        `six or more diceware words); nothing was changed`,
    );
  }
  if (passphrase?.includes("\uFFFD")) {
    throw new Error(
      `${action}: the passphrase is not UTF-8 text (a file saved in another encoding, or a ` +
        `terminal set to one?): what is typed on another terminal would not open the key; ` +
        `save it as UTF-8, or type it on a UTF-8 terminal; nothing was changed`,
    );
  }
}

/**
 * A new passphrase, typed twice on the terminal; `undefined` without a terminal. Two that
 * differ are refused (`action` starts the line): nothing is changed then.
 */
export async function askNewPassphrase(
  prompt: Prompt,
  what: string,
  action: string,
): Promise<string | undefined> {
  const typed = await prompt(`${what}: `);
  if (typed !== undefined && await prompt(`The same ${what.toLowerCase()} again: `) !== typed) {
    throw new Error(`${action}: the two passphrases differ: nothing was changed; run it again`);
  }
  return typed;
}
