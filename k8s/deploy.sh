#!/usr/bin/env bash
# Apply a kustomize overlay and wait until the service runs the new version.
#
#   k8s/deploy.sh [dev|prod]                      (default: dev)
#   IMAGE=registry.example.com/library/lending-service@sha256:... k8s/deploy.sh prod
#
# Environment:
#   IMAGE     image reference replacing the overlay's lending-service image
#   KUBECTL   kubectl binary (default: kubectl); KUBECONFIG/context as usual
#   TIMEOUT   how long to wait for the migration and each rollout (default 300s)
#   DRY_RUN   set to 1 to render and print the manifests without applying them
set -euo pipefail

overlay="${1:-dev}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
overlay_dir="$here/overlays/$overlay"
kubectl_bin="${KUBECTL:-kubectl}"
timeout="${TIMEOUT:-300s}"

if [[ ! -f "$overlay_dir/kustomization.yaml" ]]; then
    echo "deploy: unknown overlay '$overlay' (expected one of: $(cd "$here/overlays" && echo *))" >&2
    exit 2
fi

manifests="$(mktemp)"
trap 'rm -f "$manifests"' EXIT

"$kubectl_bin" kustomize "$overlay_dir" >"$manifests"
if [[ -n "${IMAGE:-}" ]]; then
    # Every container of the service runs the same image, whatever its role.
    sed -E -i "s#^([[:space:]]*image: )[^[:space:]]*lending-service([:@][^[:space:]]*)?\$#\\1${IMAGE}#" "$manifests"
fi

namespace="$(awk '/^kind: Namespace$/ {ns=1} ns && /^  name: / {print $2; exit}' "$manifests")"
if [[ -z "$namespace" ]]; then
    echo "deploy: the overlay renders no Namespace" >&2
    exit 2
fi

if [[ "${DRY_RUN:-0}" == "1" ]]; then
    cat "$manifests"
    exit 0
fi

echo "deploy: overlay=$overlay namespace=$namespace"
grep -E '^[[:space:]]*image: ' "$manifests" | sort -u | sed 's/^[[:space:]]*/deploy:   /'

# The namespace first, then make sure the Secret (not committed) exists.
"$kubectl_bin" create namespace "$namespace" --dry-run=client -o yaml | "$kubectl_bin" apply -f - >/dev/null
if ! "$kubectl_bin" -n "$namespace" get secret lending-secrets >/dev/null 2>&1; then
    echo "deploy: Secret lending-secrets is missing in namespace $namespace." >&2
    echo "deploy: create it as shown in k8s/secret.template.yaml, then run this again." >&2
    exit 1
fi

# A Job's template is immutable: remove the previous migration run so this
# deploy migrates with the image it deploys.
"$kubectl_bin" -n "$namespace" delete job lending-migrate --ignore-not-found --wait=true

"$kubectl_bin" apply -f "$manifests"

echo "deploy: waiting for the migration job"
if ! "$kubectl_bin" -n "$namespace" wait --for=condition=complete job/lending-migrate --timeout="$timeout"; then
    echo "deploy: migration did not complete; its logs:" >&2
    "$kubectl_bin" -n "$namespace" logs job/lending-migrate --tail=100 >&2 || true
    exit 1
fi

deployments="$("$kubectl_bin" -n "$namespace" get deployments -l app.kubernetes.io/part-of=library -o name)"
for deployment in $deployments; do
    echo "deploy: waiting for $deployment"
    "$kubectl_bin" -n "$namespace" rollout status "$deployment" --timeout="$timeout"
done

echo "deploy: done"
"$kubectl_bin" -n "$namespace" get deployments,hpa,cronjobs,pods -l app.kubernetes.io/part-of=library
