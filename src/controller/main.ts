// The controller process: the admission webhook (every replica) plus the leader-elected
// reconcile loop, over the in-cluster service-account connection. A bin entry only calls
// runController(); everything is configured by environment:
//   TARTAN_NAMESPACE      where records and the Lease live (default tartan-system)
//   POD_NAME              identity in the Lease (default: the host name)
//   TARTAN_WEBHOOK_DIR    tls.crt, tls.key and (optional) ca.crt of the webhook
//                         (default /etc/tartan/webhook, a mounted Secret)
//   TARTAN_WEBHOOK_PORT   default 8443
//   TARTAN_SERVICE_NAME   the webhook's Service, for the caBundle update (default tartan-webhook)
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { createKubeClient, inClusterConnection, type KubeConnection } from '../k8s/client.js';
import { kubernetesStoreWith } from '../store/kubernetes.js';
import { startController } from './controller.js';
import { registerWebhooks, webhookConfigurations } from './registration.js';
import { startWebhook } from './webhook.js';

export interface RunningController {
  webhookUrl: string;
  isLeader(): boolean;
  stop(): Promise<void>;
}

const log = (msg: string) =>
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), msg }) + '\n');

export async function runController(
  env: NodeJS.ProcessEnv = process.env,
  conn: KubeConnection = inClusterConnection(),
  opts: { intervalMs?: number; host?: string } = {},
): Promise<RunningController> {
  const namespace = env.TARTAN_NAMESPACE ?? 'tartan-system';
  const dir = env.TARTAN_WEBHOOK_DIR ?? '/etc/tartan/webhook';
  const client = createKubeClient(conn);
  const store = kubernetesStoreWith(client, { namespace });
  const tls = {
    cert: readFileSync(`${dir}/tls.crt`, 'utf8'),
    key: readFileSync(`${dir}/tls.key`, 'utf8'),
  };
  const webhook = await startWebhook(
    { client, store, log },
    tls,
    opts.host ?? '0.0.0.0',
    Number(env.TARTAN_WEBHOOK_PORT ?? 8443),
  );
  log(`webhook listening on ${webhook.url}`);
  // The configurations ship with deploy/; only their caBundle is ours to keep current
  // (the certificate may be rotated by whoever writes the Secret).
  let ca: string | undefined;
  try {
    ca = readFileSync(`${dir}/ca.crt`, 'utf8');
  } catch {
    log('no ca.crt next to the webhook certificate: leaving the webhook caBundle alone');
  }
  if (ca) {
    const service = { namespace, name: env.TARTAN_SERVICE_NAME ?? 'tartan-webhook' };
    await registerWebhooks(client, webhookConfigurations({ service }, ca)).catch((e: unknown) =>
      log(
        `could not update the webhook configurations: ${e instanceof Error ? e.message : String(e)}`,
      ),
    );
  }
  const ctl = startController({
    client,
    store,
    namespace,
    identity: env.POD_NAME ?? hostname(),
    log,
    ...(opts.intervalMs === undefined ? {} : { intervalMs: opts.intervalMs }),
  });
  return {
    webhookUrl: webhook.url,
    isLeader: () => ctl.isLeader(),
    async stop() {
      await ctl.stop();
      await webhook.close();
      client.close();
    },
  };
}
