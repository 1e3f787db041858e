/**
 * The groups a user's processes hold, as a login or systemd gives them (initgroups): the
 * primary group /etc/passwd names and every group /etc/group lists the user in. A file's
 * group bits apply to lightningd when its group is any of them.
 *
 * @module
 */

/** The groups of `uid`, from the text of /etc/passwd and /etc/group; none when it has no entry. */
export function groupsIn(passwd: string, group: string, uid: number): number[] {
  const entry = passwd.split("\n").map((line) => line.split(":"))
    .find((fields) => fields.length >= 4 && fields[2] !== "" && Number(fields[2]) === uid);
  if (entry === undefined) return [];
  const [name, , , gid] = entry;
  const groups = new Set([gid]);
  for (const line of group.split("\n")) {
    const [, , id, members = ""] = line.split(":");
    if (members.split(",").includes(name)) groups.add(id);
  }
  return [...groups].filter((id) => /^\d+$/.test(id)).map(Number);
}

/** The groups of `uid` on this machine; none when its user files cannot be read. */
export function userGroups(uid: number): number[] {
  try {
    return groupsIn(
      Deno.readTextFileSync("/etc/passwd"),
      Deno.readTextFileSync("/etc/group"),
      uid,
    );
  } catch {
    // A system whose users come from elsewhere (LDAP): the owner's group alone is judged.
    return [];
  }
}
