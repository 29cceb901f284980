// Finalizers, as the controller drops and adds them: a JSON patch that applies only to the
// version of the object that was read, so a change made meanwhile waits for the next round.
import type { KubeClient } from './client.js';

/** The metadata a controller reads to finalize an object. */
export interface FinalizableMeta {
  name: string;
  namespace: string;
  resourceVersion: string;
  deletionTimestamp?: string;
  finalizers?: string[];
}

/** Sets the object's finalizers if it is still at meta.resourceVersion; the HTTP status. */
export async function setFinalizers(
  client: KubeClient,
  path: string,
  meta: FinalizableMeta,
  finalizers: string[],
): Promise<number> {
  const res = await client.request({
    method: 'PATCH',
    patchType: 'json',
    path,
    body: [
      { op: 'test', path: '/metadata/resourceVersion', value: meta.resourceVersion },
      // add, not replace: it sets the member whether or not the object has one yet.
      { op: 'add', path: '/metadata/finalizers', value: finalizers },
    ],
  });
  return res.status;
}
