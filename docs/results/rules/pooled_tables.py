"""The pooled tables of docs/results/rules.md section 1: each figure pooled over the seeds (counts added, then the
95% Wilson interval), from a study's results.json (default: the committed docs/results/rules/cpu2/results.json).
Run from the repository root: python docs/results/rules/pooled_tables.py [results.json]"""
import json
import sys
from collections import defaultdict
from hf_diffusion_lm.stats import wilson_interval as w

runs = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "docs/results/rules/cpu2/results.json"))
model = lambda r: r["name"].split("_")[0]
groups = defaultdict(list)
for r in runs:
    groups[(model(r), r["samples_per_rule"])].append(r)
seeds = lambda rs: ", ".join(str(r["seed"]) for r in rs)
j = lambda xs, key: ", ".join("%.3f" % x[key] for x in xs)
fmt = lambda k, n: f"{k / n:.3f} [{w(k, n)[0]:.3f}, {w(k, n)[1]:.3f}]"
print("| model | samples/rule | seeds | val loss (per seed) | AnyValid | C3 | C3 novel | C2 | invalid | memorized samples / rows | panels (control) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
chance = {}
for (m, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    u = [next(iter(r["unconditional"].values())) for r in rs]
    tot = lambda name: (sum(round(x[name] * x[name + "_trials"]) for x in u), sum(x[name + "_trials"] for x in u))
    mem = [x["memorization"] for x in u]
    ctrl = [r["chance"]["memorization_control"] for r in rs]
    print(f"| {m} | {n} | {seeds(rs)} | {j(rs, 'validation_loss')} | "
          f"{fmt(*tot('anyvalid'))} | {fmt(*tot('c3'))} | {fmt(*tot('c3_novel'))} | {fmt(*tot('c2'))} | "
          f"{max(x['invalid_token_rate'] for x in u):.3f} | {max(x['sample'] for x in mem):.3f} / {max(x['row'] for x in mem):.3f} | "
          f"{j(mem, 'panel')} ({j(ctrl, 'panel')}) |")
    chance[n] = [r["chance"]["unconditional_shuffled_panels"] for r in rs]
for n, cs in chance.items():
    print(f"| chance: shuffled panels | {n} | | | {j(cs, 'anyvalid')} | {j(cs, 'c3')} | | {j(cs, 'c2')} | | | |")
print()
print("| model | samples/rule | seeds | method | all | Const Shape (0) | Const Size (10) | **Prog+1 Size (13)** | held-out Const Color (20) | empty panels |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (m, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    for method in rs[0]["completion"]:
        accs = [r["completion"][method] for r in rs]
        k = sum(round(a["all"] * 200) for a in accs); t = 200 * len(accs)
        rule = lambda rid: fmt(sum(round(a["per_rule"][rid] * 50) for a in accs), 50 * len(accs))
        print(f"| {m} | {n} | {len(rs)} | {method.split('_')[-1]} | {fmt(k, t)} | {rule('0')} | {rule('10')} | {rule('13')} | {rule('20')} | "
              f"{j(accs, 'empty_panels')} |")
cm = runs[0]["chance"]
rp = ", ".join("%.3f" % r["chance"]["completion_random_panel"]["all"] for r in runs)
print(f"| chance | | | copy the middle panel / a random training panel | 0.750 / {rp} | 1 | 1 | 0 | 1 | |")
print()
print("| model | samples/rule | step | val loss | AnyValid | C3 | greedy completion | seeds |")
print("|---|---|---|---|---|---|---|---|")
for (m, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    for i in range(len(rs[0]["curve"])):
        pts = [r["curve"][i] for r in rs]
        u = [p["unconditional"] for p in pts]
        tot = lambda name: (sum(round(x[name] * x[name + "_trials"]) for x in u), sum(x[name + "_trials"] for x in u))
        comp = sum(round(p["completion"]["all"] * 200) for p in pts)
        print(f"| {m} | {n} | {pts[0]['step']} | {j(pts, 'validation_loss')} | {fmt(*tot('anyvalid'))} | {fmt(*tot('c3'))} | {fmt(comp, 200 * len(pts))} | {len(pts)} |")
