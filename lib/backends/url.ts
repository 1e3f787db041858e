/**
 * Backup URLs, as the Python plugin writes them in `backup.lock`:
 * `file:///abs/path` and `socket:host:port[?proxy=socks5:host:port]`; and ours,
 * `socket+tls:host:port[?fp=sha256:<hex>][&proxy=socks5:host:port]` (wire v2 over TLS, the
 * server's certificate pinned by its SHA-256 fingerprint, or without `fp` checked against
 * Deno's CA store), and `s3://bucket/prefix[?endpoint=…&region=…&path-style=1]`.
 *
 * @module
 */

import { parseS3Url, type S3Url } from "./s3/s3_url.ts";

export type BackupUrl =
  | { scheme: "file"; path: string }
  | {
    scheme: "socket";
    host: string;
    port: number;
    proxy?: { host: string; port: number };
    /** Over TLS; `fingerprint`: the server certificate's SHA-256, 64 lowercase hex digits. */
    tls?: { fingerprint?: string };
  }
  | S3Url;

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

/**
 * Parses a file URL: `file:///abs/path`, or `file://localhost/abs/path` (RFC 8089: localhost
 * is this machine). Another host, a relative path or parameters are refused.
 */
function parseFileUrl(url: string, rest: string): BackupUrl {
  const authority = /^\/\/([^/?#]*)/.exec(rest)?.[1];
  if (authority !== undefined && authority !== "" && authority.toLowerCase() !== "localhost") {
    throw new BackupUrlError(
      url,
      `it names the host "${authority}", but a file URL names a path on this machine: ` +
        'write "file:///abs/path"',
    );
  }
  const pathPart = authority === undefined ? "" : rest.slice(2 + authority.length);
  if (!pathPart.startsWith("/")) {
    throw new BackupUrlError(url, 'write an absolute path, as in "file:///var/backups/node"');
  }
  if (/[?#]/.test(pathPart)) throw new BackupUrlError(url, "file URLs take no parameters");
  let path: string;
  try {
    // The URL parser resolves "." and ".." segments.
    path = decodeURIComponent(new URL(`file://${pathPart}`).pathname).replace(/\/+$/, "");
  } catch {
    throw new BackupUrlError(url, 'it holds a malformed %-escape: write "%" as "%25"');
  }
  if (path.includes("\0")) {
    throw new BackupUrlError(url, "its path holds a NUL byte (%00), which no file name can hold");
  }
  if (path === "") throw new BackupUrlError(url, "the path is the root directory");
  return { scheme: "file", path };
}

function parseSocketUrl(url: string, rest: string, tls: boolean): BackupUrl {
  const [address, query, ...extra] = rest.split("?");
  if (extra.length > 0) throw new BackupUrlError(url, "more than one '?'");
  const parsed: BackupUrl = { scheme: "socket", ...hostPort(address, url) };
  if (tls) parsed.tls = {};
  if (query === "") throw new BackupUrlError(url, "an empty '?': remove it");
  const params = new URLSearchParams(query ?? "");
  const known = tls ? ["proxy", "fp"] : ["proxy"];
  const unknown = [...params.keys()].filter((key) => !known.includes(key));
  if (unknown[0] === "fp") {
    throw new BackupUrlError(
      url,
      '"fp" pins a TLS certificate: write "socket+tls:", not "socket:"',
    );
  }
  if (unknown.length > 0) {
    throw new BackupUrlError(
      url,
      `unknown parameter "${unknown[0]}" (only ${known.map((k) => `"${k}"`).join(" and ")} ` +
        `${known.length > 1 ? "are" : "is"} known)`,
    );
  }
  const proxy = params.get("proxy");
  if (proxy !== null) {
    if (!proxy.startsWith("socks5:")) {
      throw new BackupUrlError(url, 'proxy must be "socks5:host:port"');
    }
    parsed.proxy = hostPort(proxy.slice("socks5:".length), url);
  }
  const fp = params.get("fp");
  if (fp !== null) {
    const hex = /^sha256:([0-9a-fA-F]{64})$/.exec(fp)?.[1];
    if (!hex) {
      throw new BackupUrlError(
        url,
        'fp must be "sha256:" and 64 hex digits, as "server init-tls" printed it',
      );
    }
    parsed.tls = { fingerprint: hex.toLowerCase() };
  }
  return parsed;
}

/** Parses a backup URL; the scheme is case-insensitive (RFC 3986). */
/** `host:port`, with an IPv6 host in brackets (as URLs and Deno's `--allow-net` write it). */
export function formatHostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export function parseBackupUrl(url: string): BackupUrl {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url)?.[1];
  const rest = url.slice((scheme?.length ?? 0) + 1);
  switch (scheme?.toLowerCase()) {
    case "file":
      return parseFileUrl(url, rest);
    case "socket":
    case "socket+tls":
      return parseSocketUrl(url, rest, scheme.toLowerCase() === "socket+tls");
    case "s3":
      return parseS3Url(rest, (why) => {
        throw new BackupUrlError(url, why);
      });
    case undefined:
      throw new BackupUrlError(url, "it has no scheme (use file:///abs/path)");
    default:
      throw new BackupUrlError(
        url,
        `unknown scheme "${scheme}" (use file://, socket:, socket+tls: or s3://)`,
      );
  }
}
