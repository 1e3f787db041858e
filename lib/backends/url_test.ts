import { BackupUrlError, parseBackupUrl, sameBackup } from "./url.ts";
import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";

function rejects(url: string, why: RegExp): void {
  let error: unknown;
  try {
    parseBackupUrl(url);
  } catch (caught) {
    error = caught;
  }
  assert(error instanceof BackupUrlError, `${url} should be refused`);
  assertMatch(error.message, /^Cannot use backup URL "/);
  assert(error.message.includes(`"${url}"`), "the message names the URL");
  assertMatch(error.message, why);
  assertEquals(error.message.split("\n").length, 1);
}

Deno.test("parseBackupUrl: file URLs with an absolute path", () => {
  assertEquals(parseBackupUrl("file:///var/backups/node1"), {
    scheme: "file",
    path: "/var/backups/node1",
  });
  assertEquals(parseBackupUrl("file:///var/backups/node1/"), {
    scheme: "file",
    path: "/var/backups/node1",
  });
  assertEquals(parseBackupUrl("file:///home/op/backup.dbak"), {
    scheme: "file",
    path: "/home/op/backup.dbak",
  });
  assertEquals(parseBackupUrl("file:///tmp/my%20backup"), {
    scheme: "file",
    path: "/tmp/my backup",
  });
});

Deno.test("parseBackupUrl: file URLs with a relative path or a host are refused", () => {
  rejects("file:backup.dbak", /write an absolute path/);
  rejects("file://backup.dbak", /names the host "backup.dbak", .*: write "file:\/\/\/abs\/path"$/);
  rejects("file://host/var/backup", /names the host "host", but a file URL names a path on this/);
  // The three slashes mistyped as one: the error shows the URL meant.
  rejects("file:/var/backup", /three slashes: write "file:\/\/\/var\/backup"$/);
});

Deno.test("parseBackupUrl: localhost and an upper-case scheme are accepted (RFC 8089, 3986)", () => {
  for (
    const url of [
      "file://localhost/var/backup",
      "file://LOCALHOST/var/backup",
      "FILE:///var/backup",
      "File://localhost/var/backup/",
    ]
  ) {
    assertEquals(parseBackupUrl(url), { scheme: "file", path: "/var/backup" }, url);
  }
  assertEquals(parseBackupUrl("SOCKET:127.0.0.1:9000"), {
    scheme: "socket",
    host: "127.0.0.1",
    port: 9000,
  });
});

Deno.test("parseBackupUrl: a NUL byte or a malformed escape is a one-line refusal", () => {
  rejects("file:///var/back%00up", /its path holds a NUL byte \(%00\), which no file name can/);
  rejects("file:///var/back%ZZup", /it holds a malformed %-escape: write "%" as "%25"$/);
  rejects("file:///var/%E0%A4%A", /malformed %-escape/);
});

Deno.test("parseBackupUrl: file URLs take no parameters and are not the root", () => {
  rejects("file:///var/backup?compress=1", /file URLs take no parameters/);
  rejects("file:///var/backup#x", /file URLs take no parameters/);
  rejects("file:///", /the path is the root directory/);
  rejects("file:////", /the path is the root directory/);
});

Deno.test("parseBackupUrl: socket URLs", () => {
  assertEquals(parseBackupUrl("socket:backup.example.org:9000"), {
    scheme: "socket",
    host: "backup.example.org",
    port: 9000,
  });
  assertEquals(parseBackupUrl("socket:127.0.0.1:1"), {
    scheme: "socket",
    host: "127.0.0.1",
    port: 1,
  });
  assertEquals(parseBackupUrl("socket:[::1]:65535"), {
    scheme: "socket",
    host: "::1",
    port: 65535,
  });
  assertEquals(parseBackupUrl("socket:[fe80::1:2]:1234"), {
    scheme: "socket",
    host: "fe80::1:2",
    port: 1234,
  });
});

Deno.test("parseBackupUrl: socket URLs through a SOCKS5 proxy", () => {
  assertEquals(parseBackupUrl("socket:abcdef.onion:9000?proxy=socks5:127.0.0.1:9050"), {
    scheme: "socket",
    host: "abcdef.onion",
    port: 9000,
    proxy: { host: "127.0.0.1", port: 9050 },
  });
  assertEquals(parseBackupUrl("socket:[::1]:9000?proxy=socks5:[::1]:9050"), {
    scheme: "socket",
    host: "::1",
    port: 9000,
    proxy: { host: "::1", port: 9050 },
  });
});

Deno.test("parseBackupUrl: socket+tls URLs pin a fingerprint, also through a proxy", () => {
  const hex = "0123456789abcdef".repeat(4);
  assertEquals(parseBackupUrl(`socket+tls:backup.example.org:9000?fp=sha256:${hex}`), {
    scheme: "socket",
    host: "backup.example.org",
    port: 9000,
    tls: { fingerprint: hex },
  });
  assertEquals(
    parseBackupUrl(
      `SOCKET+TLS:abc.onion:9000?fp=sha256:${hex.toUpperCase()}&proxy=socks5:[::1]:9050`,
    ),
    {
      scheme: "socket",
      host: "abc.onion",
      port: 9000,
      proxy: { host: "::1", port: 9050 },
      tls: { fingerprint: hex },
    },
  );
  rejects(`socket+tls:h:9000?fp=sha256:${hex.slice(1)}`, /fp must be "sha256:" and 64 hex/);
  rejects(`socket+tls:h:9000?fp=${hex}`, /fp must be "sha256:" and 64 hex/);
  rejects(
    `socket:h:9000?fp=sha256:${hex}`,
    /"fp" says how to trust a TLS certificate: write "socket\+tls:"/,
  );
});

Deno.test("parseBackupUrl: socket+tls URLs trust a CA file instead, also through a proxy", () => {
  assertEquals(parseBackupUrl("socket+tls:[::1]:9000?ca=/etc/cln-backup/ca.pem"), {
    scheme: "socket",
    host: "::1",
    port: 9000,
    tls: { ca: "/etc/cln-backup/ca.pem" },
  });
  assertEquals(
    parseBackupUrl("socket+tls:abc.onion:9000?proxy=socks5:127.0.0.1:9050&ca=/srv/my%20ca.pem"),
    {
      scheme: "socket",
      host: "abc.onion",
      port: 9000,
      proxy: { host: "127.0.0.1", port: 9050 },
      tls: { ca: "/srv/my ca.pem" },
    },
  );
  rejects("socket+tls:h:9000?ca=ca.pem", /ca must be the absolute path of a PEM file .*"ca.pem"/);
  rejects(
    "socket:h:9000?ca=/etc/ca.pem",
    /"ca" says how to trust a TLS certificate: write "socket\+tls:"/,
  );
  rejects(
    "socket+tls:h:9000?x=1",
    /unknown parameter "x" \(only "proxy", "fp" and "ca" are known\)/,
  );
});

Deno.test("parseBackupUrl: a socket+tls URL has exactly one of fp and ca, in one line saying what to do", () => {
  const hex = "0123456789abcdef".repeat(4);
  for (
    const [url, why] of [
      [
        "socket+tls:h:9000",
        /a socket\+tls: URL says how to trust the server: add "\?fp=sha256:<hex>".* or "\?ca=\/path\/ca.pem"/,
      ],
      ["socket+tls:h:9000?proxy=socks5:127.0.0.1:9050", /says how to trust the server/],
      [
        `socket+tls:h:9000?fp=sha256:${hex}&ca=/etc/ca.pem`,
        /it has both "fp" and "ca": keep one, add "\?fp=/,
      ],
    ] as const
  ) {
    rejects(url, why);
  }
});

Deno.test("parseBackupUrl: socket URLs without a valid host:port", () => {
  rejects("socket:backup.example.org", /is not host:port/);
  rejects("socket:host:0", /is not host:port/);
  rejects("socket:host:65536", /is not host:port/);
  rejects("socket:host:123456", /is not host:port/);
  rejects("socket::9000", /is not host:port/);
  rejects("socket:::1:9000", /is not host:port/);
  rejects("socket:[::1]", /is not host:port/);
  rejects("socket:host:port", /is not host:port/);
  // "//" as file:// and socks5:// write it would name a host "//host".
  rejects(
    "socket://backup.example.org:8700",
    /"\/\/backup\.example\.org:8700" is not host:port: leave out the "\/\/" \(socket:host:port, proxy=socks5:host:port\)/,
  );
  rejects("socket:h:9000?proxy=socks5://127.0.0.1:9050", /leave out the "\/\/"/);
  rejects("socket:ho/st:9000", /is not host:port/);
});

Deno.test("parseBackupUrl: socket URLs with unknown or bad parameters", () => {
  rejects("socket:host:9000?timeout=5", /unknown parameter "timeout" \(only "proxy" is known\)/);
  rejects("socket:host:9000?proxy=socks5:127.0.0.1:9050&x=1", /unknown parameter "x"/);
  rejects(
    "socket:host:9000?proxy=socks5:127.0.0.1:9050&proxy=socks5:127.0.0.1:9150",
    /"proxy" is given more than once: keep the one you mean/,
  );
  rejects("socket:host:9000?proxy=http:127.0.0.1:8080", /proxy must be "socks5:host:port"/);
  rejects("socket:host:9000?", /an empty '\?': remove it/);
  rejects("socket:host:9000?proxy=socks5:127.0.0.1", /is not host:port/);
  rejects("socket:host:9000?a?b", /more than one '\?'/);
});

Deno.test("parseBackupUrl: unknown schemes and no scheme", () => {
  rejects(
    "http://host/backup",
    /unknown scheme "http" \(use file:\/\/, socket:, socket\+tls: or s3:\/\/\)/,
  );
  rejects("ftp://host/backup", /unknown scheme "ftp"/);
  rejects("/var/backups/node1", /it has no scheme \(use file:\/\/\/abs\/path\)/);
  rejects("backup.dbak", /it has no scheme/);
  rejects("", /it has no scheme/);
});

Deno.test("parseBackupUrl: a broken %-escape or a NUL in a file path is refused, not thrown", () => {
  rejects("file:///var/backups/node%zz", /it holds a malformed %-escape: write "%" as "%25"/);
  rejects("file:///var/backups/node%E0", /it holds a malformed %-escape: write "%" as "%25"/);
  rejects("file:///var/backups/node%00", /its path holds a NUL byte \(%00\)/);
});

Deno.test("parseBackupUrl: s3 URLs name a bucket, a prefix and where S3 is", () => {
  assertEquals(parseBackupUrl("s3://my-bucket/nodes/node1/"), {
    scheme: "s3",
    bucket: "my-bucket",
    prefix: "nodes/node1/",
    endpoint: "https://s3.us-east-1.amazonaws.com",
    region: "us-east-1",
    pathStyle: false,
  });
  assertEquals(
    parseBackupUrl("S3://b01/n?endpoint=http://127.0.0.1:7480&region=eu-west-2&path-style=1"),
    {
      scheme: "s3",
      bucket: "b01",
      prefix: "n/",
      endpoint: "http://127.0.0.1:7480",
      region: "eu-west-2",
      pathStyle: true,
    },
  );
  assertEquals(parseBackupUrl("s3://b01?region=eu-central-1"), {
    scheme: "s3",
    bucket: "b01",
    prefix: "",
    endpoint: "https://s3.eu-central-1.amazonaws.com",
    region: "eu-central-1",
    pathStyle: false,
  });
  assertEquals(
    parseBackupUrl("s3://b01/n?endpoint=https://minio.home:9000&ca=/etc/cln-backup/home-ca.pem"),
    {
      scheme: "s3",
      bucket: "b01",
      prefix: "n/",
      endpoint: "https://minio.home:9000",
      region: "us-east-1",
      pathStyle: false,
      ca: "/etc/cln-backup/home-ca.pem",
    },
  );
});

Deno.test("parseBackupUrl: a bad s3 URL is refused with what to write", () => {
  rejects("s3://My_Bucket/x", /is not an S3 bucket name/);
  rejects("s3:bucket/x", /write "s3:\/\/bucket\/prefix"/);
  rejects("s3://bucket/x?acl=public", /unknown parameter "acl"/);
  rejects("s3://bucket/x?path-style=yes", /path-style must be "0" or "1"/);
  rejects("s3://bucket/x?region=eu-west-1&region=us-east-1", /"region" is given more than once/);
  rejects("s3://bucket/x?endpoint=ftp://h", /must be http\(s\):\/\/host\[:port\]/);
  rejects("s3://bucket/x?endpoint=http://h/path", /with no path or credentials/);
  rejects("s3://bucket/x?endpoint=nonsense", /is not a URL/);
  rejects(
    "s3://bucket/x?endpoint=http://127.0.0.1:7480",
    /endpoint "http:\/\/127\.0\.0\.1:7480" is an IP address, .*: add "&path-style=1"$/,
  );
  rejects("s3://bucket/x?endpoint=http://[::1]:7480&path-style=0", /is an IP address/);
  rejects("s3://bucket/a/../b", /"\." or "\.\." segment/);
  rejects("s3://bucket/x?region=EU%20West", /is not a region name/);
  rejects(
    "s3://bucket/x?endpoint=https://minio.home&ca=ca.pem",
    /ca= must be the absolute path of a PEM file of CA certificates, not "ca\.pem"/,
  );
  rejects(
    "s3://bucket/x?endpoint=http://minio.home&ca=/etc/ca.pem",
    /ca= names the CA of an https:\/\/ endpoint, and "http:\/\/minio\.home" is plain http/,
  );
});

Deno.test("sameBackup: one backup however its URL is spelled; another is another", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/backup`);
    Deno.symlinkSync(`${dir}/backup`, `${dir}/link`);
    const file = `file://${dir}/backup`;
    for (const same of [`${file}/`, `file://localhost${dir}/backup`, `file://${dir}/link`]) {
      assert(sameBackup(file, same), same);
    }
    assert(!sameBackup(file, `file://${dir}/other`));
    assert(sameBackup("s3://bucket/node1", "s3://bucket/node1/"));
    assert(sameBackup("S3://bucket/node1?region=eu-west-1", "s3://bucket/node1?region=eu-west-1"));
    assert(!sameBackup("s3://bucket/node1", "s3://bucket/node2"));
    assert(
      sameBackup(
        "socket+tls:backup.example:9000?proxy=socks5:127.0.0.1:9050&fp=sha256:" + "AB".repeat(32),
        "socket+tls:backup.example:9000?fp=sha256:" + "ab".repeat(32) +
          "&proxy=socks5:127.0.0.1:9050",
      ),
    );
    assert(!sameBackup("socket:backup.example:9000", "socket:backup.example:9001"));
    assert(!sameBackup("not a url", "not a url either"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
