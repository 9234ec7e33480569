/** @module Whether this Node can run the gateway: checked before any of the gateway loads. */

/** The oldest Node the gateway runs on: package.json's engines, whose undici needs it. */
export const OLDEST_NODE = '22.19.0';

/** Why `version` (as process.versions.node gives it) cannot run the gateway, or undefined when it can. */
export function tooOldNode(version: string): string | undefined {
  const have = version.split('.').map(Number);
  const need = OLDEST_NODE.split('.').map(Number);
  for (let i = 0; i < need.length; i++) {
    if ((have[i] ?? 0) > need[i]) return undefined;
    if ((have[i] ?? 0) < need[i]) {
      return `The gateway needs Node.js ${OLDEST_NODE} or later, and this is ${version}. Start it with npm start, which runs the Node 22 that npm ci installs, or put node_modules/.bin first on PATH.`;
    }
  }
  return undefined;
}
