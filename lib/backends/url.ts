/**
 * Backup URLs, as the Python plugin writes them in `backup.lock`:
 * `file:///abs/path` and `socket:host:port[?proxy=socks5:host:port]`.
 *
 * @module
 */

export type BackupUrl =
  | { scheme: "file"; path: string }
  | { scheme: "socket"; host: string; port: number; proxy?: { host: string; port: number } };

/** A URL that names no backup this tool can use. */
export class BackupUrlError extends Error {
  constructor(url: string, why: string) {
    super(`Cannot use backup URL "${url}": ${why}`);
    this.name = "BackupUrlError";
  }
}

function hostPort(text: string, url: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+):(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535) {
    throw new BackupUrlError(url, `"${text}" is not host:port (for example 127.0.0.1:9000)`);
  }
  return { host: match[1].replace(/^\[(.*)\]$/, "$1"), port };
}

export function parseBackupUrl(url: string): BackupUrl {
  if (url.startsWith("file:")) {
    if (!url.startsWith("file:///")) {
      throw new BackupUrlError(url, 'write an absolute path, as in "file:///var/backups/node"');
    }
    const parsed = new URL(url);
    if (parsed.search || parsed.hash) {
      throw new BackupUrlError(url, "file URLs take no parameters");
    }
    let path: string;
    try {
      path = decodeURIComponent(parsed.pathname).replace(/\/+$/, "");
    } catch {
      throw new BackupUrlError(url, 'a "%" in its path is not followed by a UTF-8 escape');
    }
    if (path.includes("\0")) throw new BackupUrlError(url, "its path holds a NUL byte (%00)");
    if (path === "") throw new BackupUrlError(url, "the path is the root directory");
    return { scheme: "file", path };
  }
  if (url.startsWith("socket:")) {
    const [address, query, ...rest] = url.slice("socket:".length).split("?");
    if (rest.length > 0) throw new BackupUrlError(url, "more than one '?'");
    const target = hostPort(address, url);
    if (query === undefined) return { scheme: "socket", ...target };
    const params = new URLSearchParams(query);
    const unknown = [...params.keys()].filter((key) => key !== "proxy");
    if (unknown.length > 0) {
      throw new BackupUrlError(url, `unknown parameter "${unknown[0]}" (only "proxy" is known)`);
    }
    const proxy = params.get("proxy") ?? "";
    if (!proxy.startsWith("socks5:")) {
      throw new BackupUrlError(url, 'proxy must be "socks5:host:port"');
    }
    return { scheme: "socket", ...target, proxy: hostPort(proxy.slice("socks5:".length), url) };
  }
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url)?.[1];
  throw new BackupUrlError(
    url,
    scheme
      ? `unknown scheme "${scheme}" (use file:// or socket:)`
      : "it has no scheme (use file:///abs/path)",
  );
}
