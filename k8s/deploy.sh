#!/usr/bin/env bash
# Apply a kustomize overlay in order and wait until the service runs the new version:
#   1. the database, when the overlay brings one (dev: a CloudNativePG Cluster), until it is Ready;
#   2. everything but the release's processes (config, services, policies, the migration Job),
#      then the migration, as long as the Job's own activeDeadlineSeconds allows;
#   3. everything, then each Deployment's rollout.
# The relay, the scheduler and the SIP2 gateway also wait for the schema themselves (their
# wait-for-schema init containers), and Argo CD / Helm run the Job as a pre-sync hook, so the order
# holds without this script too.
#
#   k8s/deploy.sh [dev|prod]                      (default: dev)
#   IMAGE=registry.example.com/library/lending-service@sha256:... k8s/deploy.sh prod
#
# Environment:
#   IMAGE             image reference replacing the overlay's lending-service image
#   KUBECTL           kubectl binary (default: kubectl); KUBECONFIG/context as usual
#   TIMEOUT           how long to wait for each rollout (default 300s)
#   DATABASE_TIMEOUT  how long to wait for the overlay's database to be Ready (default 900s)
#   DRY_RUN           set to 1 to render and print the manifests without applying them
set -euo pipefail

overlay="${1:-dev}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
overlay_dir="$here/overlays/$overlay"
kubectl_bin="${KUBECTL:-kubectl}"
timeout="${TIMEOUT:-300s}"
database_timeout="${DATABASE_TIMEOUT:-900s}"
# Labels that order the apply (kubectl apply -l): the database, then all but the release's processes.
database_selector="app.kubernetes.io/component=database"
before_migration_selector="app.kubernetes.io/component notin (web,relay,scheduler,sip,privacy)"

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

# The migration may run as long as its Job's activeDeadlineSeconds: wait that long (plus a minute for
# the Job controller to start it and report the end), not less.
migration_deadline="$(awk '/^---$/ {job = 0} /^kind: Job$/ {job = 1}
    job && /^  activeDeadlineSeconds: [0-9]+$/ {print $2; exit}' "$manifests")"
if [[ -z "$migration_deadline" ]]; then
    echo "deploy: the overlay renders no migration Job with an activeDeadlineSeconds" >&2
    exit 2
fi
migration_timeout="$((migration_deadline + 60))s"

if [[ "${DRY_RUN:-0}" == "1" ]]; then
    cat "$manifests"
    exit 0
fi

echo "deploy: overlay=$overlay namespace=$namespace"
grep -E '^[[:space:]]*image: ' "$manifests" | sort -u | sed 's/^[[:space:]]*/deploy:   /'

# The namespace first, then make sure the Secret (not committed) exists.
"$kubectl_bin" create namespace "$namespace" --dry-run=client -o yaml | "$kubectl_bin" apply -f - >/dev/null
require_secret() {
    if ! "$kubectl_bin" -n "$namespace" get secret "$1" >/dev/null 2>&1; then
        echo "deploy: Secret $1 is missing in namespace $namespace." >&2
        echo "deploy: $2" >&2
        exit 1
    fi
}
require_secret lending-secrets "create it as shown in k8s/secret.template.yaml, then run this again."

# 1. The overlay's own database (dev), until the operator reports it Ready.
if grep -qE '^kind: Cluster$' "$manifests"; then
    echo "deploy: the database first"
    "$kubectl_bin" apply -f "$manifests" -l "$database_selector"
    "$kubectl_bin" -n "$namespace" wait --for=condition=Ready clusters.postgresql.cnpg.io \
        -l "$database_selector" --timeout="$database_timeout"
fi
# The password of CloudNativePG's app Secret (k8s/examples/cloudnative-pg/app-secret).
if grep -qE '^ +name: lending-db-app$' "$manifests"; then
    require_secret lending-db-app "the CloudNativePG Cluster creates it: kubectl apply -k k8s/examples/cloudnative-pg first."
fi

# 2. Everything but the release's processes, and the migration. A Job's template is immutable:
# remove the previous run so this deploy migrates with the image it deploys.
"$kubectl_bin" -n "$namespace" delete job lending-migrate --ignore-not-found --wait=true
"$kubectl_bin" apply -f "$manifests" -l "$before_migration_selector"

echo "deploy: waiting for the migration job (up to $migration_timeout: its activeDeadlineSeconds)"
if ! "$kubectl_bin" -n "$namespace" wait --for=condition=complete job/lending-migrate --timeout="$migration_timeout"; then
    echo "deploy: migration did not complete; its logs:" >&2
    "$kubectl_bin" -n "$namespace" logs job/lending-migrate --all-containers --tail=100 >&2 || true
    exit 1
fi

# 3. The release's processes, on their schema.
"$kubectl_bin" apply -f "$manifests"
deployments="$("$kubectl_bin" -n "$namespace" get deployments -l app.kubernetes.io/part-of=library -o name)"
for deployment in $deployments; do
    echo "deploy: waiting for $deployment"
    "$kubectl_bin" -n "$namespace" rollout status "$deployment" --timeout="$timeout"
done

echo "deploy: done"
"$kubectl_bin" -n "$namespace" get deployments,hpa,cronjobs,pods -l app.kubernetes.io/part-of=library
