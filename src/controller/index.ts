// The controller: admission webhook, leader election, reconcile (status, IPAM GC, events).
export { runController, type RunningController } from './main.js';
export { startController, type Controller, type ControllerOptions } from './controller.js';
export { startLeaderElection, type LeaderElector, type LeaderOptions } from './leader.js';
export { reconcileOnce, emitEvent } from './reconcile.js';
export { apiLookup, mutate, startWebhook, validate, type WebhookServer } from './webhook.js';
export { registerWebhooks, webhookConfigurations, type WebhookTarget } from './registration.js';
export { reconcileSegments, releaseSegment, reserveSegment } from './segments.js';
