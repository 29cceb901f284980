// The webhook configurations that make the API server call the webhook. In a cluster they
// point at the controller's Service; in tests, at a URL on loopback. Both fail closed.
import type { KubeClient } from '../k8s/client.js';

export type WebhookTarget =
  { url: string } | { service: { namespace: string; name: string; port?: number } };

const SYSTEM_NAMESPACES = ['kube-system', 'tartan-system'];

function clientConfig(target: WebhookTarget, path: string, caBundle: string) {
  const ca = Buffer.from(caBundle).toString('base64');
  if ('url' in target) return { url: `${target.url}${path}`, caBundle: ca };
  return { service: { ...target.service, port: target.service.port ?? 443, path }, caBundle: ca };
}

const common = {
  admissionReviewVersions: ['v1'],
  // The webhook writes VLAN/VNI reservations, but never for a dry run.
  sideEffects: 'NoneOnDryRun',
  failurePolicy: 'Fail',
  matchPolicy: 'Equivalent',
  timeoutSeconds: 10,
};

const tartanRule = (resources: string[], operations: string[]) => ({
  apiGroups: ['tartan.io'],
  apiVersions: ['v1alpha1'],
  resources,
  operations,
  scope: '*',
});

export function webhookConfigurations(target: WebhookTarget, caBundle: string, name = 'tartan') {
  const validate = clientConfig(target, '/validate', caBundle);
  const validating = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: 'networks.tartan.io',
        clientConfig: validate,
        rules: [tartanRule(['clusternetworks', 'tenantnetworks'], ['CREATE', 'UPDATE', 'DELETE'])],
        ...common,
      },
      {
        name: 'tenantconfigs.tartan.io',
        clientConfig: validate,
        rules: [tartanRule(['tenantconfigs'], ['CREATE', 'UPDATE'])],
        ...common,
      },
      {
        name: 'pods.tartan.io',
        clientConfig: validate,
        rules: [
          {
            apiGroups: [''],
            apiVersions: ['v1'],
            resources: ['pods'],
            operations: ['CREATE'],
            scope: 'Namespaced',
          },
        ],
        // Pods of the control plane and of Tartan itself must start while the webhook is down.
        namespaceSelector: {
          matchExpressions: [
            { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: SYSTEM_NAMESPACES },
          ],
        },
        ...common,
      },
    ],
  };
  const mutating = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: 'networks.tartan.io',
        clientConfig: clientConfig(target, '/mutate', caBundle),
        rules: [tartanRule(['clusternetworks', 'tenantnetworks'], ['CREATE'])],
        reinvocationPolicy: 'Never',
        ...common,
      },
    ],
  };
  return { validating, mutating };
}

/** Creates or replaces both configurations. */
export async function registerWebhooks(
  client: KubeClient,
  configs: ReturnType<typeof webhookConfigurations>,
): Promise<void> {
  const base = '/apis/admissionregistration.k8s.io/v1';
  for (const [res, obj] of [
    ['validatingwebhookconfigurations', configs.validating],
    ['mutatingwebhookconfigurations', configs.mutating],
  ] as const) {
    const path = `${base}/${res}/${obj.metadata.name}`;
    const cur = await client.request<{ metadata: { resourceVersion: string } }>({
      method: 'GET',
      path,
    });
    if (cur.status === 200) {
      const metadata = { ...obj.metadata, resourceVersion: cur.body.metadata.resourceVersion };
      await client.must({ method: 'PUT', path, body: { ...obj, metadata } });
    } else await client.must({ method: 'POST', path: `${base}/${res}`, body: obj });
  }
}
