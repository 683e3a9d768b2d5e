// Which members of a group may answer for a repository name. A group that puts a public pull-through cache
// after the registry it pushes to must never let the cache answer for that registry's own images: when the
// hosted registry lacks a tag, is down or fails, whoever publishes the same name upstream would supply it
// (dependency confusion). So each member may declare the names it serves (`repositories`), and pushTo owns
// names no other member is ever asked for:
//
//   serves   a member with `repositories` serves the names they match; one without serves every name.
//   owns     pushTo owns the names its `repositories` match; without them, every name no other member
//            declares (the other members then serve only what they declare: an allow-list).
//   asks     an owned name: pushTo alone, and its 404, 5xx or silence is the answer. Any other name: the
//            members that serve it, in group order. A group without pushTo owns nothing.
import type { GroupMember, GroupUpstream } from "./upstream.js";

export interface MemberChoice {
  /** The members that may answer, in group order; empty: the group does not serve the name. */
  members: readonly GroupMember[];
  /** The name is pushTo's: members is [pushTo], and no other member may stand in for it. */
  owned: boolean;
}

/** True when `member` serves `repository` (before ownership: see membersFor). */
export function serves(member: GroupMember, repository: string): boolean {
  return member.repositories === null || member.repositories(repository);
}

/** True when `repository` is pushTo's alone. */
export function owns(group: GroupUpstream, repository: string): boolean {
  const { pushTo } = group;
  if (!pushTo) return false;
  if (pushTo.repositories) return pushTo.repositories(repository);
  return !group.members.some((member) => member !== pushTo && member.repositories !== null && member.repositories(repository));
}

/** The members asked for `repository`, in order. */
export function membersFor(group: GroupUpstream, repository: string): MemberChoice {
  if (owns(group, repository)) return { members: [group.pushTo!], owned: true };
  return { members: group.members.filter((member) => serves(member, repository)), owned: false };
}

/** True when `member` may answer for `repository` (its tags and catalog entries count only then). */
export function answersFor(group: GroupUpstream, member: GroupMember, repository: string): boolean {
  return membersFor(group, repository).members.includes(member);
}
