"""Write confidence_calibration.ipynb."""

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("# Confidence calibration\n\n"
       "How far can the CNN's confidence be trusted? For each fold's 'after' model we "
       "draw reliability diagrams (accuracy against confidence in 25 equal bins, ECE with "
       "100 bins as in the paper) on its validation and test folds, fit the study's "
       "calibrator — a laplacian kernel ridge regression on the validation reliability "
       "curve, anchored at (0, 0) and (1, 1) — and compare it with temperature scaling and "
       "isotonic regression. Needs `results/predictions.npz` from `main.ipynb`."),
    code("# parameters\n"
         "results_dir = \"results\"\n"
         "calibration_dir = \"confidence_calibration_models\"\n"
         "n_bins = 25",
         metadata={"tags": ["parameters"]}),
    code("import json\n"
         "from pathlib import Path\n\n"
         "import matplotlib.pyplot as plt\n"
         "import numpy as np\n"
         "from IPython.display import display\n\n"
         "from utils import calibration as cal\n"
         "from utils import calibration_report as report\n"
         "from utils import plots\n"
         "from utils.classes import CLASSES\n\n"
         "results = Path(results_dir)\n"
         "folds = report.read_predictions(results / 'predictions.npz')\n"
         "fitted = report.fit_all(folds, calibration_dir)\n"
         "kr = fitted['kernel_ridge']\n"
         "print(f\"{len(folds)} folds; calibrators saved in {calibration_dir}/\")"),
    md("## Per fold: validation and test, before and after calibration"),
    code("fig, axes = plt.subplots(len(folds), 4, figsize=(13, 4.2 * len(folds)))\n"
         "for f, row in zip(folds, np.atleast_2d(axes), strict=True):\n"
         "    for j, (part, probs, labels) in enumerate([('validation', f.val_probs, "
         "f.val_labels), ('test', f.test_probs, f.test_labels)]):\n"
         "        ok = cal.correctness(probs, labels)\n"
         "        for i, c in enumerate([None, kr[f.fold]]):\n"
         "            conf = report.calibrated_confidence(c, probs)\n"
         "            name = 'calibrated' if c else 'uncalibrated'\n"
         "            plots.plot_reliability(cal.reliability(conf, ok, n_bins), cal.ece(conf, "
         "ok), row[2 * j + i],\n"
         "                                   f'fold {f.fold} {part}, {name}',\n"
         "                                   color='tab:green' if c else 'tab:blue')\n"
         "fig.tight_layout()\n"
         "plots.save_figure(fig, results / 'calibration_per_fold')"),
    md("## Aggregated over folds (pooled counts), test sets"),
    code("def pooled(c_of_fold, bins):\n"
         "    return cal.pool_reliability(\n"
         "        cal.reliability(report.calibrated_confidence(c_of_fold(f), f.test_probs),\n"
         "                        cal.correctness(f.test_probs, f.test_labels), bins)\n"
         "        for f in folds)\n\n"
         "fig, ax = plt.subplots(figsize=(4.5, 4.5))\n"
         "ece_pooled = {}\n"
         "for i, (name, getter, color) in enumerate([\n"
         "        ('uncalibrated', lambda f: None, 'tab:blue'),\n"
         "        ('kernel ridge', lambda f: kr[f.fold], 'tab:green')]):\n"
         "    ece_pooled[name] = cal.ece(pooled(getter, 100))\n"
         "    plots.plot_reliability(pooled(getter, n_bins), ece_pooled[name], ax, "
         "'pooled test folds', label=name,\n"
         "                           color=color, hist=i == 0, ece_y=0.12 - 0.08 * i)\n"
         "ax.legend(loc='upper left', fontsize=8)\n"
         "plots.save_figure(fig, results / 'calibration_pooled')\n"
         "print({k: round(v, 4) for k, v in ece_pooled.items()})"),
    md("## Class-wise (predictions of one class, pooled test folds)\n\nThe paper finds "
       "firn and refrozen-like the worst calibrated classes."),
    code("probs = np.concatenate([f.test_probs for f in folds])\n"
         "labels = np.concatenate([f.test_labels for f in folds])\n"
         "conf_kr = np.concatenate([kr[f.fold].calibrate(f.test_probs) for f in folds])\n"
         "fig, axes = plt.subplots(2, 4, figsize=(13, 7.5))\n"
         "classwise = {}\n"
         "for k, ax in enumerate(axes.flat):\n"
         "    before = cal.classwise_reliability(probs, labels, k, n_bins)\n"
         "    after = cal.classwise_reliability(probs, labels, k, n_bins, conf=conf_kr)\n"
         "    e = cal.classwise_ece(probs, labels)[k], cal.classwise_ece(probs, labels, "
         "conf=conf_kr)[k]\n"
         "    classwise[CLASSES[k]] = {'uncalibrated': e[0], 'kernel_ridge': e[1]}\n"
         "    if before.count.sum():\n"
         "        plots.plot_reliability(before, e[0], ax, CLASSES[k])\n"
         "        plots.plot_reliability(after, e[1], ax, CLASSES[k], color='tab:green', "
         "hist=False,\n"
         "                               ece_y=0.12)\n"
         "    else:\n"
         "        ax.set_title(f'{CLASSES[k]}: never predicted', fontsize=9)\n"
         "fig.tight_layout()\n"
         "plots.save_figure(fig, results / 'calibration_classwise')"),
    md("## Comparison of calibrators\n\nThe study's kernel ridge against temperature "
       "scaling (one parameter, fitted on validation log-probabilities) and isotonic "
       "regression, test ECE₁₀₀ per fold and pooled."),
    code("table = report.comparison_table(folds, fitted)\n"
         "table.to_csv(results / 'calibration_comparison.csv')\n"
         "(results / 'calibration_metrics.json').write_text(json.dumps(\n"
         "    {'pooled_test_ece100': table.loc['pooled'].to_dict(), 'classwise_ece100': "
         "classwise},\n"
         "    indent=2))\n"
         "display(table.round(4))"),
]
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "confidence_calibration.ipynb")
