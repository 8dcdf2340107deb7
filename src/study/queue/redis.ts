/** One place that opens Redis connections for the study queue, so an unreachable server fails at once with the fix. */
import { Redis } from 'ioredis';
import { TapirError } from '../../engine/index.js';
import { redisUrl } from './manifest.js';

/** A connected client; refuses an unreachable server within a few seconds instead of retrying forever. */
export async function connectRedis(url: string): Promise<Redis> {
  const client = new Redis(redisUrl(url), {
    lazyConnect: true,
    connectTimeout: 5000,
    maxRetriesPerRequest: 2,
    retryStrategy: (n) => (n > 3 ? null : 200 * n),
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    client.disconnect();
    throw new TapirError('E_REDIS', `cannot reach Redis at ${url}: ${(e as Error).message}`, {
      context: { redis: url },
      fix:
        'start redis-server on that machine (make setup installs it; bind it to an address the workers reach) and pass its URL, e.g. --redis ' +
        'redis://host:6379',
    });
  }
  return client;
}

/** BullMQ connection options for a URL (its blocking commands need maxRetriesPerRequest null). */
export function bullConnection(url: string): { url: string; maxRetriesPerRequest: null } {
  return { url: redisUrl(url), maxRetriesPerRequest: null };
}
