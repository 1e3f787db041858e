import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../../tests/support/assert.ts";
import { ageRecipientOf, newAgeIdentity } from "../crypto/primitives.ts";
import {
  checkNewPassphrase,
  gatherSecrets,
  givenPassphrase,
  IDENTITY_ENV,
  PASSPHRASE_ENV,
  type Prompt,
  readTypedLine,
} from "./secrets.ts";

Deno.test("a relative --passphrase-file is the operator's (deno task's INIT_CWD), a missing one named", () => {
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  // A stand-in environment: tests run in parallel in one process.
  const env = { get: (name: string) => name === "INIT_CWD" ? dir : undefined };
  try {
    Deno.writeTextFileSync(`${dir}/pass`, "correct horse\nsecond line\n", { mode: 0o600 });
    assertEquals(givenPassphrase("pass", PASSPHRASE_ENV, env), "correct horse");
    const missing = assertThrows(() => givenPassphrase("nopass", PASSPHRASE_ENV, env));
    assertEquals(
      missing.message,
      `Cannot read the passphrase file "nopass": there is no file "${dir}/nopass": check the path`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("an identity file or CLN_BACKUP_IDENTITY that holds no whole identity is refused, not passed over", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  const env = (identity?: string) => ({
    get: (name: string) => name === IDENTITY_ENV ? identity : name === "INIT_CWD" ? dir : undefined,
  });
  const noPrompt: Prompt = () => Promise.reject(new Error("prompted"));
  try {
    const identity = await newAgeIdentity();
    const recipient = await ageRecipientOf(identity);
    Deno.writeTextFileSync(`${dir}/good`, `# public key: ${recipient}\n${identity}\n`, {
      mode: 0o600,
    });
    Deno.writeTextFileSync(`${dir}/public`, `${recipient}\n`, { mode: 0o600 });
    Deno.writeTextFileSync(`${dir}/cut`, `${identity.slice(0, -3)}\n`, { mode: 0o600 });

    assertEquals(await gatherSecrets({ identity: "good" }, noPrompt, env()), [{ identity }]);
    assertEquals(await gatherSecrets({}, noPrompt, env(identity)), [{ identity }]);

    const refused = async (values: Record<string, string>, identityEnv?: string) =>
      (await assertRejects(() => gatherSecrets(values, noPrompt, env(identityEnv)))).message;
    assertEquals(
      await refused({ identity: "public" }),
      `Cannot unlock backup: "public" holds no age identity (AGE-SECRET-KEY-1...): give the ` +
        `identity age-keygen wrote, not its public key (age1...)`,
    );
    // Set to a public key, the variable was skipped and the passphrase asked for.
    assertMatch(
      await refused({}, recipient),
      /^Cannot unlock backup: CLN_BACKUP_IDENTITY holds no/,
    );
    const cut = await refused({ identity: "cut" });
    assertEquals(
      cut,
      `Cannot unlock backup: "cut" holds an AGE-SECRET-KEY-1... line that is not a whole age ` +
        `identity: copy it again from the file age-keygen wrote`,
    );
    assert(!cut.includes(identity.slice(0, 20)), "the error shows the secret");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a --passphrase-file saved with CRLF line ends: the passphrase is the line without its \\r", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  const env = { get: (name: string) => name === "INIT_CWD" ? dir : undefined };
  const noPrompt: Prompt = () => Promise.reject(new Error("prompted"));
  try {
    Deno.writeTextFileSync(`${dir}/pass`, "correct horse\r\nsecond line\r\n", { mode: 0o600 });
    // What init and rekey wrap a new key for: what the operator would type.
    assertEquals(givenPassphrase("pass", PASSPHRASE_ENV, env), "correct horse");
    // Unlocking tries it, then the line as written (a key an earlier version wrapped).
    assertEquals(await gatherSecrets({ "passphrase-file": "pass" }, noPrompt, env), [
      { passphrase: "correct horse" },
      { passphrase: "correct horse\r" },
    ]);
    Deno.writeTextFileSync(`${dir}/unix`, "correct horse\n", { mode: 0o600 });
    assertEquals(await gatherSecrets({ "passphrase-file": "unix" }, noPrompt, env), [
      { passphrase: "correct horse" },
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("CLN_BACKUP_PASSPHRASE set from a CRLF file: the passphrase is the value without its \\r", async () => {
  const env = { get: (name: string) => name === PASSPHRASE_ENV ? "correct horse\r" : undefined };
  const noPrompt: Prompt = () => Promise.reject(new Error("prompted"));
  assertEquals(givenPassphrase(undefined, PASSPHRASE_ENV, env), "correct horse");
  assertEquals(await gatherSecrets({}, noPrompt, env), [
    { passphrase: "correct horse" },
    { passphrase: "correct horse\r" },
  ]);
});

Deno.test("a --passphrase-file or CLN_BACKUP_PASSPHRASE with a byte order mark: the passphrase is the text after it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  const noPrompt: Prompt = () => Promise.reject(new Error("prompted"));
  try {
    // Notepad's and PowerShell 5's "UTF-8" starts the file with U+FEFF, which is not typed.
    Deno.writeTextFileSync(`${dir}/pass`, "\uFEFFcorrect horse\r\n", { mode: 0o600 });
    const fileEnv = { get: (name: string) => name === "INIT_CWD" ? dir : undefined };
    assertEquals(givenPassphrase("pass", PASSPHRASE_ENV, fileEnv), "correct horse");
    // Unlocking tries it, then what earlier versions wrapped: the mark kept, then the \r too.
    assertEquals(await gatherSecrets({ "passphrase-file": "pass" }, noPrompt, fileEnv), [
      { passphrase: "correct horse" },
      { passphrase: "\uFEFFcorrect horse" },
      { passphrase: "\uFEFFcorrect horse\r" },
    ]);
    const env = {
      get: (name: string) => name === PASSPHRASE_ENV ? "\uFEFFcorrect horse" : undefined,
    };
    assertEquals(givenPassphrase(undefined, PASSPHRASE_ENV, env), "correct horse");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a new passphrase that is not UTF-8 (a Latin-1 file) is refused in one line, not shown", () => {
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  const env = { get: (name: string) => name === "INIT_CWD" ? dir : undefined };
  try {
    // "café au lait" in Latin-1: its é is no UTF-8, read as U+FFFD, as any such byte is.
    const bytes = Uint8Array.from([..."caf\xe9 au lait\n"].map((c) => c.charCodeAt(0)));
    Deno.writeFileSync(`${dir}/latin1`, bytes, { mode: 0o600 });
    const passphrase = givenPassphrase("latin1", PASSPHRASE_ENV, env);
    const error = assertThrows(() => checkNewPassphrase("Cannot rekey backup", passphrase));
    assertMatch(
      error.message,
      /^Cannot rekey backup: the passphrase is not UTF-8 text .*; nothing was changed$/,
    );
    assert(!error.message.includes("lait"), error.message);
    checkNewPassphrase("Cannot rekey backup", "café au lait");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("an identity given as --identity's file name: refused without printing it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  const env = { get: (name: string) => name === "INIT_CWD" ? dir : undefined };
  const noPrompt: Prompt = () => Promise.reject(new Error("prompted"));
  try {
    const identity = await newAgeIdentity();
    const error = await assertRejects(() => gatherSecrets({ identity }, noPrompt, env));
    assert(!error.message.includes(identity.slice(15)), error.message);
    assertMatch(error.message, /--identity takes the path of an identity file/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a passphrase or identity file others may read is refused, naming its mode and the chmod; a pipe is not", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  const env = { get: (name: string) => name === "INIT_CWD" ? dir : undefined };
  const noPrompt: Prompt = () => Promise.reject(new Error("prompted"));
  try {
    const pass = `${dir}/pass`;
    Deno.writeTextFileSync(pass, "correct horse\n", { mode: 0o600 });
    Deno.chmodSync(pass, 0o644);
    assertEquals(
      assertThrows(() => givenPassphrase("pass", PASSPHRASE_ENV, env)).message,
      `Cannot take the passphrase: the passphrase file "${pass}" may be read by other users ` +
        `(mode 0644): run chmod 600 "${pass}"`,
    );
    const identity = await newAgeIdentity();
    const identityFile = `${dir}/identity`;
    Deno.writeTextFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
    Deno.chmodSync(identityFile, 0o640);
    const refused = await assertRejects(() =>
      gatherSecrets({ identity: "identity" }, noPrompt, env)
    );
    assertEquals(
      refused.message,
      `Cannot take the identity: the identity file "${identityFile}" may be read by other ` +
        `users (mode 0640): run chmod 600 "${identityFile}"`,
    );
    Deno.chmodSync(pass, 0o600);
    assertEquals(givenPassphrase("pass", PASSPHRASE_ENV, env), "correct horse");
    // A pipe (`<(pass show …)`) keeps nothing at rest: its mode does not matter.
    const fifo = `${dir}/fifo`;
    new Deno.Command("mkfifo", { args: ["-m", "0644", fifo] }).outputSync();
    const writer = new Deno.Command("sh", { args: ["-c", `printf 'from a pipe\\n' > '${fifo}'`] })
      .spawn();
    assertEquals(givenPassphrase(fifo, PASSPHRASE_ENV, env), "from a pipe");
    await writer.status;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a backspace on the terminal takes back a whole character, not one byte of it", async () => {
  /** A terminal that sends `typed`, a byte at a time. */
  const terminal = (typed: Uint8Array) => {
    let at = 0;
    return (buffer: Uint8Array) => {
      if (at === typed.length) return Promise.resolve(null);
      buffer[0] = typed[at++];
      return Promise.resolve(1);
    };
  };
  const utf8 = (text: string) => new TextEncoder().encode(text);
  const typed = (...parts: (string | number)[]) =>
    new Uint8Array(parts.flatMap((part) => typeof part === "number" ? [part] : [...utf8(part)]));
  // "cafè", a backspace (DEL, as most terminals send it), "é", Enter.
  assertEquals(await readTypedLine(terminal(typed("cafè", 127, "é", 13))), "café");
  // A 4-byte character taken back whole; ^H, as some terminals send, is a backspace too.
  assertEquals(await readTypedLine(terminal(typed("pw🔑", 127, "x", 8, "!", 10))), "pw!");
  assertEquals(await readTypedLine(terminal(typed(127, "a", 13))), "a");
});

Deno.test("an empty passphrase given is named as such, not tried as a wrong one", async () => {
  const env = (value: string) => ({
    get: (name: string) => name === PASSPHRASE_ENV ? value : undefined,
  });
  const noPrompt: Prompt = () => Promise.reject(new Error("prompted"));
  await assertRejects(
    () => gatherSecrets({}, noPrompt, env("")),
    /^Cannot unlock backup: the passphrase given is empty \(CLN_BACKUP_PASSPHRASE\): give the backup's passphrase$/,
  );
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  try {
    Deno.writeTextFileSync(`${dir}/pass`, "\n", { mode: 0o600 });
    await assertRejects(
      () => gatherSecrets({ "passphrase-file": `${dir}/pass` }, noPrompt, env("x")),
      /the passphrase given is empty \(the first line of ".*\/pass"\)/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  // Beside an identity, the empty variable is passed over: the identity may open the key.
  const identity = await newAgeIdentity();
  const both = {
    get: (name: string) =>
      name === PASSPHRASE_ENV ? "" : name === IDENTITY_ENV ? identity : undefined,
  };
  assertEquals(await gatherSecrets({}, noPrompt, both), [{ identity }]);
});

Deno.test("a passphrase typed with a backspace also opens a key earlier versions wrapped for it, read a byte at a time", async () => {
  const typed = (...parts: (string | number)[]) =>
    new Uint8Array(
      parts.flatMap((part) =>
        typeof part === "number" ? [part] : [...new TextEncoder().encode(part)]
      ),
    );
  /** The prompt of a terminal on which `keys` are typed. */
  const terminal = (keys: Uint8Array): Prompt => (_question, earlier) => {
    let at = 0;
    return readTypedLine((buffer) => {
      if (at === keys.length) return Promise.resolve(null);
      buffer[0] = keys[at++];
      return Promise.resolve(1);
    }, earlier);
  };
  // Earlier versions took back one byte of "è" (leaving U+FFFD) and kept ^H in the line: an
  // init typed so wrapped the key for that, and the same keys must still open it.
  assertEquals(
    await gatherSecrets({}, terminal(typed("cafè", 127, "é", 13)), { get: () => undefined }),
    [
      { passphrase: "café" },
      { passphrase: "caf\uFFFDé" },
    ],
  );
  assertEquals(
    await gatherSecrets({}, terminal(typed("pw", 8, "x", 13)), { get: () => undefined }),
    [
      { passphrase: "px" },
      { passphrase: "pw\bx" },
    ],
  );
  // Nothing taken back: one reading.
  assertEquals(await gatherSecrets({}, terminal(typed("café", 13)), { get: () => undefined }), [
    { passphrase: "café" },
  ]);
});
