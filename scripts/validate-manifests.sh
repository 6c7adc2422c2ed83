#!/usr/bin/env bash
# Schema checks of every manifest Isthmus prints (`isthmus deploy`, `create-remote-secret`):
# kubernetes-validate (PyPI, ships its schemas: no network) for the Kubernetes kinds, `isthmus
# validate` for the Istio kinds, and `kubectl kustomize` of each deploy/ overlay compared with
# `isthmus deploy` of the same values, so the embedded renderer and the kustomize tree agree.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin isthmus
isthmus="${CARGO_TARGET_DIR:-target}/debug/isthmus"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for role in discovery eastwest ingress; do
  "$isthmus" deploy "$role" --network network1 --cluster cluster1 >"$out/$role-default.yaml"
  "$isthmus" deploy "$role" --network network-b --cluster cluster-b --namespace mesh-b \
    --image registry.example:5000/isthmus:1.2.3 >"$out/$role-other.yaml"
done

# create-remote-secret: the reader objects, and a remote Secret from a throwaway kubeconfig and
# token made here (test fixtures, never a real cluster's).
"$isthmus" create-remote-secret --name cluster2 >"$out/remote-reader.yaml" 2>/dev/null
cat >"$out/kubeconfig" <<'KUBECONFIG'
apiVersion: v1
kind: Config
clusters:
- name: c2
  cluster:
    server: https://192.0.2.10:6443
    certificate-authority-data: Y2E=
contexts:
- name: c2
  context: {cluster: c2, user: u}
current-context: c2
users:
- name: u
  user: {token: unused}
KUBECONFIG
printf 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln\n' >"$out/token"
"$isthmus" create-remote-secret --name cluster2 --kubeconfig "$out/kubeconfig" \
  --token-file "$out/token" >"$out/remote-secret.yaml"

python3 - "$out" <<'PY'
import pathlib, sys
import kubernetes_validate, yaml

istio = pathlib.Path(sys.argv[1]) / "istio"
istio.mkdir()

failed = 0
checked = 0
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        name = f"{path.name}: {doc['kind']}/{doc['metadata']['name']}"
        # Istio's CRDs have no builtin schema in kubernetes-validate; `isthmus validate` checks
        # them below with Istio's own rules.
        if doc["apiVersion"].startswith("networking.istio.io/"):
            print(f"skip {name} (Istio kind: isthmus validate)")
            (istio / f"{path.stem}-{doc['metadata']['name']}.yaml").write_text(yaml.safe_dump(doc))
            continue
        try:
            kubernetes_validate.validate(doc, "1.32.0", strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as error:
            failed += 1
            path_in = ".".join(str(part) for part in error.path)
            print(f"ERROR {name}: {path_in}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            failed += 1
            print(f"ERROR {name}: no schema for {doc['apiVersion']} {doc['kind']}")
print(f"kubernetes-validate: {checked} objects valid, {failed} invalid")
sys.exit(1 if failed else 0)
PY

"$isthmus" validate "$out/istio"

if command -v kubectl >/dev/null; then
  for role in discovery eastwest ingress; do
    kubectl kustomize "deploy/overlays/$role" 2>/dev/null >"$out/$role.kustomize"
    python3 - "$out/$role.kustomize" "$out/$role-default.yaml" <<'PY'
import sys, yaml
key = lambda doc: (doc["apiVersion"], doc["kind"], doc["metadata"]["name"])
kustomize, ours = (sorted(filter(None, yaml.safe_load_all(open(p))), key=key) for p in sys.argv[1:])
if kustomize != ours:
    sys.exit(f"isthmus deploy and kubectl kustomize differ for {sys.argv[1]}")
print(f"kubectl kustomize = isthmus deploy: {len(ours)} objects ({sys.argv[1].rsplit('/', 1)[-1]})")
PY
  done
else
  echo "kubectl not installed: the kustomize comparison is skipped (.ci/run installs it)"
fi
