/**
 * A SOCKS5 client handshake (RFC 1928), no authentication, as Tor's SocksPort takes it.
 * A host name goes to the proxy unresolved (address type 3), so `.onion` names work and no
 * DNS query leaves this machine.
 *
 * @module
 */
import { writeFully } from "../../wire/conn_io.ts";

/** Anything that reads and writes bytes (a `Deno.Conn`). */
export interface Duplex {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
}

/** The proxy refused or broke the handshake. */
class Socks5Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Socks5Error";
  }
}

const REPLIES: Record<number, string> = {
  1: "general SOCKS server failure",
  2: "connection not allowed by ruleset",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused",
  6: "TTL expired",
  7: "command not supported",
  8: "address type not supported",
};

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The address part of a request: type, then bytes (RFC 1928 section 5). */
export function encodeAddress(host: string): Uint8Array {
  const v4 = IPV4.exec(host);
  if (v4 && v4.slice(1).every((n) => Number(n) <= 255)) {
    return Uint8Array.of(1, ...v4.slice(1).map(Number));
  }
  if (host.includes(":")) return Uint8Array.of(4, ...ipv6Bytes(host));
  const name = new TextEncoder().encode(host);
  if (name.length === 0 || name.length > 255) {
    throw new Socks5Error(`host name "${host}" is not 1 to 255 bytes long`);
  }
  return Uint8Array.of(3, name.length, ...name);
}

function ipv6Bytes(host: string): number[] {
  const [head, tail] = host.split("::");
  const groups = (part: string | undefined) => part ? part.split(":") : [];
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined
    ? left
    : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  if (all.length !== 8 || !all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) {
    throw new Socks5Error(`"${host}" is not an IPv6 address this client can send`);
  }
  return all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

async function readExact(conn: Duplex, n: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(n);
  for (let at = 0; at < n;) {
    const read = await conn.read(bytes.subarray(at));
    if (read === null) throw new Socks5Error("the proxy closed the connection mid-handshake");
    at += read;
  }
  return bytes;
}

/** Asks the proxy on `conn` to connect to `host:port`; on return `conn` is the tunnel. */
export async function socks5Connect(conn: Duplex, host: string, port: number): Promise<void> {
  await writeFully(conn, Uint8Array.of(5, 1, 0));
  const [version, method] = await readExact(conn, 2);
  if (version !== 5) throw new Socks5Error(`the proxy answered SOCKS version ${version}, not 5`);
  if (method !== 0) {
    throw new Socks5Error("the proxy wants authentication, which this client does not do");
  }
  const address = encodeAddress(host);
  const request = new Uint8Array(3 + address.length + 2);
  request.set([5, 1, 0]);
  request.set(address, 3);
  new DataView(request.buffer).setUint16(3 + address.length, port);
  await writeFully(conn, request);
  const [, reply, , type] = await readExact(conn, 4);
  if (reply !== 0) {
    throw new Socks5Error(
      `the proxy could not connect to ${host}:${port}: ${REPLIES[reply] ?? `reply ${reply}`}`,
    );
  }
  const length = type === 1 ? 4 : type === 4 ? 16 : type === 3 ? (await readExact(conn, 1))[0] : -1;
  if (length < 0) throw new Socks5Error(`the proxy answered address type ${type}`);
  await readExact(conn, length + 2);
}
