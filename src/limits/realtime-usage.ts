/** @module A realtime session's tokens, counted on the key that started it as Azure reports them. */
import { extractUsage } from '../bodies/usage';
import { ProxyKey } from '../keys/proxy-key';
import { Limiter } from './limiter';

/**
 * Watches a session's events for Azure's `response.done`, whose `response.usage`
 * holds the tokens of that response, and charges them to the key (its budgets
 * and the usage report). `key` is asked each time: a rotated secret may have
 * changed the key's limits since the session started.
 */
export function realtimeUsage(limits: Limiter, key: () => ProxyKey, model: string): (fromAzure: boolean, type: string, text: string) => void {
  return (fromAzure, type, text) => {
    if (!fromAzure || type !== 'response.done') return;
    const usage = extractUsage(text);
    if (usage !== undefined) limits.charge(key(), model, usage);
  };
}
