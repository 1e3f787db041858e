/**
 * The nodes a server keeps backups for: under its root directory, `nodes/<NAME>/key` holds
 * the node's key (hex, mode 0600, printed once by `server add-node`) and `nodes/<NAME>/backup`
 * its backup. A node reaches only its own directory: names are checked before they touch a
 * path, so none can climb out of the root.
 *
 * @module
 */
import { KEY_BYTES, keyFromText, keyToText, randomBytes } from "../wire/handshake.ts";
import { exposedSecretFile } from "../fs/secret_mode.ts";
import { readLayout } from "../format/layout.ts";
import { syncDir, writeAll } from "../fs/durable.ts";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { claimWorkPath, workPath } from "../fs/work_path.ts";
import { makeDirs, removeMadeDirs } from "../fs/made_dirs.ts";
import { osReason, outOfRoomWriting } from "../fs/os_error.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { unreadableByServer } from "./root_owner.ts";

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/**
 * The server root and node whose backup `path` is, by the layout a root of nodes keeps
 * (`ROOT/nodes/NAME/backup`, the node's key beside it); `undefined` for any other path.
 */
export function servedNodeOf(path: string): { root: string; name: string } | undefined {
  const match = /^(.*)\/nodes\/([^/]+)\/backup\/?$/.exec(path);
  if (match === null || !NAME.test(match[2])) return undefined;
  const [, root, name] = match;
  try {
    Deno.lstatSync(new NodeRegistry(root).keyPath(name));
  } catch {
    return undefined;
  }
  return { root, name };
}

/** Throws unless `name` is a node name: letters, digits, `_` and `-`, at most 64. */
export function checkNodeName(name: string): string {
  if (!NAME.test(name)) {
    throw new Error(
      `"${name}" is not a node name: use 1 to 64 letters, digits, "_" or "-", starting with ` +
        `a letter or digit`,
    );
  }
  return name;
}

/**
 * A node's key file refused at a handshake (see {@linkcode NodeRegistry.key}): one others may
 * read, whose `key` still tells whether a connected node's key was replaced, or one that holds
 * no key (`key` undefined).
 */
export class KeyFileError extends Error {
  constructor(message: string, readonly key: Uint8Array | undefined) {
    super(message);
    this.name = "KeyFileError";
  }
}

/** The nodes under a server's root directory: each one's key and backup (see the module's doc). */
export class NodeRegistry {
  /** The nodes under `root`; nothing is read or made until it is used. */
  constructor(readonly root: string) {}

  /**
   * Whether `dir` is a server root (it has a `nodes` directory). A root this user may not
   * look into throws (permission denied), rather than pass for a single backup.
   */
  static isRoot(dir: string): boolean {
    try {
      return Deno.statSync(`${dir}/nodes`).isDirectory;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        return false;
      }
      throw error;
    }
  }

  /**
   * Throws when `dir` holds a backup's own segments (the one backup `server --allow-v1`
   * serves, such as the Python server's storage after `upgrade`): made a root, that backup
   * would belong to no node, and the server would serve its nodes (and v1 clients, through
   * `--v1-node`) backups that lack every change it holds.
   */
  static checkNotOneBackup(dir: string, what: "node" | "root", name = "NAME"): void {
    let layout;
    try {
      layout = readLayout(dir);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        return;
      }
      throw error;
    }
    if (layout.bases.length === 0 && layout.logs.length === 0) return;
    const move = `with the server stopped, make the root in another directory ` +
      `("server add-node /srv/cln-backup ${name}"), move this backup there as ` +
      `/srv/cln-backup/nodes/${name}/backup, and serve that root (with ` +
      `"--allow-v1 --v1-node ${name}" while the node speaks wire v1)`;
    throw new Error(
      what === "node"
        ? `"${dir}" is one backup, not a server root: a node added here would get a new, ` +
          `empty backup (nodes/${name}/backup) and this one would be served to no one: ${move}`
        : `"${dir}" holds a backup's own files beside its nodes (a node was added to the ` +
          `directory of one backup), and the server would serve that backup to no one: ${move}`,
    );
  }

  #dir(name: string): string {
    return `${this.root}/nodes/${checkNodeName(name)}`;
  }

  /** Where node `name`'s backup lives. */
  backupDir(name: string): string {
    return `${this.#dir(name)}/backup`;
  }

  /**
   * Makes node `name` and returns its key, hex; refuses a name already taken, and a root
   * that belongs to another user than this one (the server, running as its owner, could not
   * read the key), leaving nothing made.
   */
  add(name: string): string {
    const dir = this.#dir(name);
    NodeRegistry.checkNotOneBackup(this.root, "node", name);
    // Taken back when refused or failed: left, this user's and 0700, they would keep the
    // root's owner (the server, and add-node run as it) out of every node, and an empty root
    // would pass for a server's. Made here, not looked for: another add-node may make them
    // meanwhile, and put its node in (then they are its, and stay).
    const made = makeDirs(dir, 0o700);
    let key: string;
    try {
      key = this.#writeKey(name, dir);
    } catch (error) {
      removeMadeDirs(made);
      throw error;
    }
    const other = unreadableByServer(this.root, `${dir}/key`);
    if (other !== undefined) {
      Deno.removeSync(`${dir}/key`);
      removeMadeDirs(made);
      throw new Error(
        `"${this.root}" belongs to user ${other.owner}, and this runs as user ${other.user}: ` +
          `the server, running as the root's owner, could not read a key made here, so none ` +
          `was: run it as that user: sudo -u "#${other.owner}" ` +
          cliCommand("server add-node", `${shellQuote(this.root)} ${shellQuote(name)}`),
      );
    }
    // Durable before it is printed, once: lost to a crash, it would leave the node a
    // credential that matches no key.
    for (const path of [dir, `${this.root}/nodes`, this.root]) syncDir(path);
    return key;
  }

  /** Writes a new key for node `name` in its directory `dir`; returns it, hex. */
  #writeKey(name: string, dir: string): string {
    const key = keyToText(randomBytes(KEY_BYTES));
    // Written whole to a work file, then linked to its name, which fails when the name exists:
    // a write cut short (a full disk, a kill) leaves no key file without its key, which would
    // refuse the node as a wrong credential, and this add-node run again as a node that exists.
    const work = workPath(`${dir}/key`, "creating");
    // 0600 from its creation: one who opened it 0644, before a chmod, would read the key.
    const file = claimWorkPath(work, "file", 0o600);
    try {
      Deno.chmodSync(work, 0o600);
      writeAll(file, new TextEncoder().encode(`${key}\n`));
      file.syncSync();
      Deno.linkSync(work, `${dir}/key`);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        throw new Error(
          `node "${name}" exists already: remove it first with "server remove-node" to give ` +
            `it a new key`,
        );
      }
      throw outOfRoomWriting(error, `${dir}/key`, "add-node");
    } finally {
      removeIfExists(work);
      file.close();
    }
    return key;
  }

  /** The nodes that have a key, sorted. */
  list(): string[] {
    return this.#names().filter((name) => this.#hasKey(name));
  }

  /**
   * The names whose backup is there without a key, sorted: kept by `remove-node`, or made by
   * an older server without `add-node`; `add-node` gives such a name its backup back.
   */
  keptBackups(): string[] {
    return this.#names().filter((name) => !this.#hasKey(name) && existsSync(this.backupDir(name)));
  }

  /** The node names the root's `nodes` directory holds a directory of, sorted. */
  #names(): string[] {
    const names: string[] = [];
    try {
      for (const entry of Deno.readDirSync(`${this.root}/nodes`)) {
        if (entry.isDirectory && NAME.test(entry.name)) names.push(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return names.sort();
  }

  /**
   * Node `name`'s key, or `undefined` when there is no such node (or its name is bad). A key
   * this user cannot read throws, naming the file and what to do; so do one that holds no
   * key, and one others may read, which would let them pass for that node (as ssh refuses
   * such a key): that node alone is refused until it is fixed, the others are served.
   */
  key(name: string): Uint8Array | undefined {
    if (!NAME.test(name)) return undefined;
    const path = this.keyPath(name);
    try {
      const key = keyFromText(Deno.readTextFileSync(path).trim());
      // Taken for no node, it would refuse the node's right credential as a wrong one.
      if (key === undefined) {
        throw new KeyFileError(
          `node ${name}'s key "${path}" holds no key (64 hex digits): put back the "key" of ` +
            `the node's backup.credential, or give the node a new one with "server ` +
            `remove-node" and "server add-node"`,
          undefined,
        );
      }
      const exposed = exposedSecretFile(`node ${name}'s key`, path);
      if (exposed !== undefined) throw new KeyFileError(exposed, key);
      return key;
    } catch (error) {
      if (error instanceof KeyFileError) throw error;
      if (error instanceof Deno.errors.NotFound) return undefined;
      const why = osReason(error);
      let owner = "the server's user";
      try {
        const { uid, gid } = Deno.statSync(this.root);
        if (uid !== null) owner = `${uid}:${gid}`;
      } catch {
        // The root's owner unknown: named in words.
      }
      throw new Error(
        `cannot read node ${name}'s key "${path}": ${why}: it must belong to the user the ` +
          `server runs as, who owns the root (was "server add-node" run as another?): run ` +
          `chown -R ${owner} "${this.#dir(name)}"`,
        { cause: error },
      );
    }
  }

  /** Where node `name`'s key file is (whether there is one or not). */
  keyPath(name: string): string {
    return `${this.#dir(name)}/key`;
  }

  /** Whether node `name` has a key file, readable or not. */
  #hasKey(name: string): boolean {
    try {
      Deno.statSync(`${this.#dir(name)}/key`);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      if (error instanceof Deno.errors.PermissionDenied) return true;
      throw error;
    }
  }

  /**
   * Removes node `name`'s key, so it can no longer connect; its backup stays. Returns where
   * that backup is, `undefined` when the node never wrote one (its first write makes it).
   */
  remove(name: string): string | undefined {
    try {
      Deno.removeSync(`${this.#dir(name)}/key`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      if (existsSync(this.backupDir(name))) {
        throw new Error(
          `node "${name}" has no key (removed already, or never added): nothing to remove; ` +
            `its backup stays at ${this.backupDir(name)}`,
        );
      }
      throw new Error(`there is no node "${name}": "server list-nodes" shows them`);
    }
    // Durable before it is said done: a revoked key back after a crash lets its node in.
    syncDir(this.#dir(name));
    return existsSync(this.backupDir(name)) ? this.backupDir(name) : undefined;
  }
}

/**
 * Whether `error`, thrown by {@linkcode NodeRegistry.key}, is of a kind that passes (no file
 * descriptor or memory left for now), not the key file's own: the node may try again.
 */
export function passingKeyError(error: unknown): boolean {
  const cause = (error as Error | undefined)?.cause;
  const code = (cause as { code?: unknown } | undefined)?.code;
  return cause instanceof Deno.errors.Interrupted || cause instanceof Deno.errors.WouldBlock ||
    ["EMFILE", "ENFILE", "ENOMEM", "EAGAIN", "EINTR"].includes(String(code));
}
