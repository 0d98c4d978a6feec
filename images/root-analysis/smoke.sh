#!/usr/bin/env bash
# Smoke test of the root-analysis image (runs on the host, drives the container):
#   images/root-analysis/smoke.sh IMAGE
# PyROOT and uproot write and read back the same histogram and tree, awkward and hist
# work, as a non-root user, with no network.
set -euo pipefail

runtime=${CONTAINER_RUNTIME:-podman}
image=${1:?usage: smoke.sh IMAGE}

uid=$("$runtime" run --rm --network=none "$image" id -u)
if [[ $uid == 0 ]]; then
  echo "smoke: FAIL: the image runs as root" >&2
  exit 1
fi
"$runtime" run --rm --network=none --workdir /tmp "$image" python3 -c '
import ROOT, uproot, awkward as ak, hist, numpy as np
f = ROOT.TFile("t.root", "RECREATE")
h = ROOT.TH1D("mass", "", 10, 0, 10)
for x in (1.5, 2.5, 2.5):
    h.Fill(x)
t = ROOT.TTree("Events", "")
n = np.zeros(1, dtype=np.int32)
t.Branch("nMuon", n, "nMuon/I")
for v in (0, 2, 3):
    n[0] = v
    t.Fill()
f.Write()
f.Close()
with uproot.open("t.root") as read:
    counts, _ = read["mass"].to_numpy()
    assert counts[2] == 2.0, counts
    muons = read["Events"]["nMuon"].array()
    assert ak.to_list(muons) == [0, 2, 3], muons
h2 = hist.Hist.new.Reg(10, 0, 10).Double().fill([1.5, 2.5, 2.5])
assert h2.values()[2] == 2.0
print("smoke: ROOT", ROOT.gROOT.GetVersion(), "uproot", uproot.__version__, "ok")
'
