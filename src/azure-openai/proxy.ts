/** @module Which calls to Azure OpenAI go through the configured proxy: one rule for HTTP calls and realtime sockets alike. */
import type { ProxySettings } from '../config/config';

const DEFAULT_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'ws:': 80, 'https:': 443, 'wss:': 443 };

/**
 * The proxy a call to `target` goes through, or undefined when it goes
 * direct: none is configured for its scheme, or NO_PROXY names its host. A
 * secure origin takes HTTPS_PROXY, else HTTP_PROXY, as curl and undici do.
 */
export function proxyFor(target: URL, settings: ProxySettings | undefined): string | undefined {
  if (settings === undefined) return undefined;
  const secure = target.protocol === 'https:' || target.protocol === 'wss:';
  const proxy = secure ? settings.httpsProxy ?? settings.httpProxy : settings.httpProxy;
  if (proxy === undefined || bypasses(target, settings.noProxy)) return undefined;
  return proxy;
}

/**
 * Whether NO_PROXY sends this host direct. Its entries, comma or space
 * separated: `*` (every host), `example.com` or `.example.com` (the host and
 * its subdomains), `*.example.com` (subdomains only), each with an optional
 * `:port`; IPv6 addresses bracketed when a port follows. CIDR ranges are not
 * read, as undici and the Azure SDKs do not read them either.
 */
export function bypasses(target: URL, noProxy: string): boolean {
  const host = hostOf(target);
  const port = Number(target.port) || DEFAULT_PORTS[target.protocol] || 0;
  for (const raw of noProxy.split(/[,\s]+/)) {
    const entry = parseEntry(raw.toLowerCase());
    if (entry === undefined || (entry.port !== undefined && entry.port !== port)) continue;
    if (entry.host === '*') return true;
    if (!entry.subdomainsOnly && host === entry.host) return true;
    if (host.endsWith(`.${entry.host}`)) return true;
  }
  return false;
}

interface Entry {
  readonly host: string;
  readonly port?: number;
  readonly subdomainsOnly: boolean;
}

function parseEntry(raw: string): Entry | undefined {
  if (raw === '') return undefined;
  let host = raw;
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(raw);
  const named = /^([^:]+):(\d+)$/.exec(raw);
  if (bracketed) {
    host = bracketed[1];
    port = bracketed[2] === undefined ? undefined : Number(bracketed[2]);
  } else if (named) {
    host = named[1];
    port = Number(named[2]);
  }
  const subdomainsOnly = host.startsWith('*.');
  host = host.replace(/^\*?\./, '').replace(/\.$/, '');
  return host === '' ? undefined : { host, port, subdomainsOnly };
}

/** The URL's host as NO_PROXY names hosts: lower case, IPv6 unbracketed, no trailing dot. */
function hostOf(target: URL): string {
  const host = target.hostname.toLowerCase().replace(/^\[(.+)\]$/, '$1');
  return host.length > 1 && host.endsWith('.') ? host.slice(0, -1) : host;
}
