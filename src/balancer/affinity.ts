/** @module Which member a key sticks to: weighted rendezvous hashing, the same on every instance. */

/**
 * A 32-bit hash of a string (FNV-1a over its UTF-16 code units, then mixed):
 * the same on every instance and every restart, unlike anything seeded.
 */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return mix(h);
}

/** MurmurHash3's finaliser: every input bit moves about half the output bits. */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * A member's score for a key under weighted rendezvous (highest random weight)
 * hashing: the member with the highest score among those available takes the
 * key. A key moves only when its member becomes unavailable (and comes back
 * when it returns), and members take keys in proportion to their weights.
 * `memberHash` is hashKey(member id).
 */
export function affinityScore(keyHash: number, memberHash: number, weight: number): number {
  // A uniform draw in (0, 1) per key and member; -w / ln(u) is largest for a share of keys proportional to w.
  const u = (mix((keyHash ^ memberHash) + 0x9e3779b9) + 0.5) / 4294967296;
  return -weight / Math.log(u);
}
