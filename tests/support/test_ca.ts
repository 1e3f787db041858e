/**
 * Certificate authorities for the TLS tests: a CA, and server certificates it signs for a
 * list of names and IP addresses, made with @peculiar/x509 (as lib/server/x509.ts makes the
 * server's self-signed one).
 *
 * @module
 */
import "npm:reflect-metadata@0.2";
import * as x509 from "npm:@peculiar/x509@2";

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const DAY_MS = 86_400_000;

x509.cryptoProvider.set(crypto);

export interface TestCa {
  /** The CA's certificate, PEM: what a node's `ca=` file holds. */
  cert: string;
  /** Issues a server certificate for `names` (DNS names and IP addresses), PEM. */
  issue(names: string[]): Promise<{ cert: string; key: string }>;
}

function serial(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b, i) => (i === 0 ? b & 0x7f : b).toString(16).padStart(2, "0"),
  ).join("");
}

function pem(label: string, der: ArrayBuffer): string {
  const base64 = btoa(String.fromCharCode(...new Uint8Array(der))).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}

function altNames(names: string[]): x509.SubjectAlternativeNameExtension {
  return new x509.SubjectAlternativeNameExtension(
    names.map((value) => ({
      type: /^[\d.]+$|:/.test(value) ? "ip" as const : "dns" as const,
      value,
    })),
  );
}

/** A new CA named `name`. */
export async function makeCa(name: string): Promise<TestCa> {
  const caKeys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 365 * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return {
    cert: ca.toString("pem"),
    async issue(names) {
      const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${names[0]}`,
        issuer: ca.subject,
        notBefore: new Date(now - DAY_MS),
        notAfter: new Date(now + 30 * DAY_MS),
        signingAlgorithm: ALGORITHM,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          await x509.AuthorityKeyIdentifierExtension.create(ca, false),
          altNames(names),
        ],
      });
      return {
        cert: cert.toString("pem"),
        key: pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey)),
      };
    },
  };
}
