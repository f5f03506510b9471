#!/usr/bin/env bash
# End to end on a real cluster (kind, or k3d with CLUSTER_TOOL=k3d) using manifests/:
# builds the image, loads it, installs the CRDs and the dev overlay (operator, proxies, Redis),
# applies the examples with test credentials, and runs the #[ignore]d cluster test.
#
#   scripts/e2e-kind.sh            # create cluster, test, delete cluster
#   KEEP=1 scripts/e2e-kind.sh     # keep the cluster afterwards
#
# Needs: docker, kind (or k3d), kubectl, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-poolgate-e2e}
TOOL=${CLUSTER_TOOL:-kind}
IMAGE=poolgate:dev
NS=poolgate

for bin in docker kubectl cargo "$TOOL"; do
  command -v "$bin" >/dev/null || { echo "e2e-kind: $bin is required" >&2; exit 2; }
done

cleanup() {
  if [ -z "${KEEP:-}" ]; then
    echo "e2e-kind: deleting cluster $CLUSTER"
    if [ "$TOOL" = k3d ]; then k3d cluster delete "$CLUSTER" || true; else kind delete cluster --name "$CLUSTER" || true; fi
  fi
}
trap cleanup EXIT

echo "e2e-kind: cluster"
if [ "$TOOL" = k3d ]; then
  k3d cluster list "$CLUSTER" >/dev/null 2>&1 || k3d cluster create "$CLUSTER" --wait
else
  kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
fi

echo "e2e-kind: image"
docker build -t "$IMAGE" .
if [ "$TOOL" = k3d ]; then k3d image import -c "$CLUSTER" "$IMAGE"; else kind load docker-image --name "$CLUSTER" "$IMAGE"; fi

echo "e2e-kind: CRDs, operator, proxies, Redis"
kubectl apply -k manifests/crds
kubectl wait --for=condition=Established crd/clientconfigs.poolgate.dev crd/providerpools.poolgate.dev --timeout=60s
kubectl apply -k manifests/overlays/dev
kubectl -n "$NS" rollout status statefulset/redis --timeout=180s
kubectl -n "$NS" rollout status deployment/poolgate-operator --timeout=180s

echo "e2e-kind: example resources"
kubectl apply -k manifests/examples
kubectl -n "$NS" wait --for=condition=Ready clientconfig/gateway --timeout=180s
kubectl -n "$NS" rollout status deployment/poolgate-proxy --timeout=180s
kubectl -n "$NS" wait --for=condition=Ready providerpool/openai providerpool/gemini --timeout=120s
kubectl -n "$NS" get clientconfigs,providerpools,jobs

echo "e2e-kind: cluster test"
POOLGATE_E2E_NAMESPACE="$NS" cargo test -p poolgate-operator --test cluster -- --ignored --nocapture
echo "e2e-kind: passed"
