/**
 * Backup URLs, as the Python plugin writes them in `backup.lock`:
 * `file:///abs/path` and `socket:host:port[?proxy=socks5:host:port]`; and ours,
 * `socket+tls:host:port?fp=sha256:<hex>|ca=/abs/ca.pem[&proxy=socks5:host:port]` (wire v2 over
 * TLS: the server's certificate pinned by its SHA-256 fingerprint, or chained to a CA in the
 * PEM file `ca` names and issued for `host`), and
 * `s3://bucket/prefix[?endpoint=…&region=…&path-style=1]`.
 *
 * @module
 */

import { existsSync } from "../fs/exists.ts";
import { parseS3Url, type S3Url } from "./s3/s3_url.ts";

/**
 * A parsed backup URL: a file backup's path, a server's host and port (with its proxy and TLS trust
 * when given), or an S3 bucket and prefix.
 */
export type BackupUrl =
  | { scheme: "file"; path: string }
  | {
    scheme: "socket";
    host: string;
    port: number;
    proxy?: { host: string; port: number };
    /** Over TLS, trusting the server's certificate as {@linkcode TlsTrust} says. */
    tls?: TlsTrust;
  }
  | S3Url;

/**
 * How a `socket+tls:` URL trusts the server's certificate: `fingerprint`, its SHA-256 (64
 * lowercase hex digits), pinned; or `ca`, the absolute path of a PEM file of CA certificates
 * it must chain to, issued for the URL's host.
 */
export type TlsTrust = { fingerprint: string; ca?: undefined } | {
  ca: string;
  fingerprint?: undefined;
};

/** A URL that names no backup this tool can use. */
export class BackupUrlError extends Error {
  /** An error that says `url` cannot be used, and `why`. */
  constructor(url: string, readonly why: string) {
    super(`Cannot use backup URL "${url}": ${why}`);
    this.name = "BackupUrlError";
  }
}

function hostPort(text: string, url: string): { host: string; port: number } {
  if (text.startsWith("//")) {
    throw new BackupUrlError(
      url,
      `"${text}" is not host:port: leave out the "//" (socket:host:port, proxy=socks5:host:port)`,
    );
  }
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s/]+):(\d{1,5})$/.exec(text);
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
  if (authority === undefined && rest.startsWith("/")) {
    // file:/abs/path: a URL parser takes it, but it is the "file:///" form mistyped.
    throw new BackupUrlError(url, `a file URL starts with three slashes: write "file://${rest}"`);
  }
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

const TRUST_HOW =
  'add "?fp=sha256:<hex>" (pins the certificate "server init-tls" made; it printed the ' +
  'fingerprint) or "?ca=/path/ca.pem" (trusts the CAs in that PEM file, for a certificate ' +
  "one of them issued to this host)";

/** Exactly one of `fp` and `ca`. */
function tlsTrust(url: string, fp: string | null, ca: string | null): TlsTrust {
  if (fp !== null && ca !== null) {
    throw new BackupUrlError(url, `it has both "fp" and "ca": keep one, ${TRUST_HOW}`);
  }
  if (ca !== null) {
    if (!ca.startsWith("/") || ca.includes("\0")) {
      throw new BackupUrlError(
        url,
        `ca must be the absolute path of a PEM file of CA certificates, as in ` +
          `"ca=/etc/cln-backup/ca.pem", not ${JSON.stringify(ca)}`,
      );
    }
    return { ca };
  }
  if (fp === null) {
    throw new BackupUrlError(url, `a socket+tls: URL says how to trust the server: ${TRUST_HOW}`);
  }
  const hex = /^sha256:([0-9a-fA-F]{64})$/.exec(fp)?.[1];
  if (!hex) {
    throw new BackupUrlError(
      url,
      'fp must be "sha256:" and 64 hex digits, as "server init-tls" printed it',
    );
  }
  return { fingerprint: hex.toLowerCase() };
}

function parseSocketUrl(url: string, rest: string, tls: boolean): BackupUrl {
  const [address, query, ...extra] = rest.split("?");
  if (extra.length > 0) throw new BackupUrlError(url, "more than one '?'");
  const parsed: BackupUrl = { scheme: "socket", ...hostPort(address, url) };
  if (query === "") throw new BackupUrlError(url, "an empty '?': remove it");
  const params = new URLSearchParams(query ?? "");
  const known = tls ? ["proxy", "fp", "ca"] : ["proxy"];
  const unknown = [...params.keys()].filter((key) => !known.includes(key));
  if (unknown[0] === "fp" || unknown[0] === "ca") {
    throw new BackupUrlError(
      url,
      `"${unknown[0]}" says how to trust a TLS certificate: write "socket+tls:", not "socket:"`,
    );
  }
  if (unknown.length > 0) {
    throw new BackupUrlError(
      url,
      `unknown parameter "${unknown[0]}" (only ${
        known.map((k) => `"${k}"`).join(", ").replace(/, ([^,]*)$/, " and $1")
      } ${known.length > 1 ? "are" : "is"} known)`,
    );
  }
  const twice = known.find((key) => params.getAll(key).length > 1);
  if (twice !== undefined) {
    throw new BackupUrlError(url, `"${twice}" is given more than once: keep the one you mean`);
  }
  const proxy = params.get("proxy");
  if (proxy !== null) {
    if (!proxy.startsWith("socks5:")) {
      throw new BackupUrlError(url, 'proxy must be "socks5:host:port"');
    }
    parsed.proxy = hostPort(proxy.slice("socks5:".length), url);
  }
  if (tls) parsed.tls = tlsTrust(url, params.get("fp"), params.get("ca"));
  return parsed;
}

/** `host:port`, with an IPv6 host in brackets (as URLs and Deno's `--allow-net` write it). */
export function formatHostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Parses a backup URL; the scheme is case-insensitive (RFC 3986). */
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

/** What `url` names, as one string: a file backup's path resolved through symlinks. */
function backupIdentity(url: string): string | undefined {
  try {
    const parsed = parseBackupUrl(url);
    if (parsed.scheme === "file" && existsSync(parsed.path)) {
      parsed.path = Deno.realPathSync(parsed.path);
    }
    return JSON.stringify(parsed);
  } catch {
    return undefined;
  }
}

/**
 * Whether two URLs name the same backup however each is spelled: a file path with a trailing
 * slash, through a symlink or `file://localhost/`, an S3 prefix's slashes, the parameters in
 * another order.
 */
export function sameBackup(a: string, b: string): boolean {
  if (a === b) return true;
  const identity = backupIdentity(a);
  return identity !== undefined && identity === backupIdentity(b);
}
