// The Tartan controller: admission webhook, network status, IPAM GC, tenant VNI/VLAN
// assignment; leader-elected on a Lease. Runs as the Deployment in deploy/controller.yaml.
import { runController } from '../controller/main.js';

runController().then(
  (c) => {
    // Give the Lease up on the way out so a standby takes over at once.
    const stop = () => void c.stop().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  },
  (e: unknown) => {
    console.error(
      JSON.stringify({ level: 'error', msg: 'controller failed', error: (e as Error).message }),
    );
    process.exit(1);
  },
);
