"""Write main.ipynb (kept as a script so the notebook's source stays reviewable)."""

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("# Glacier facies: cross-validated training, confident learning and evaluation\n\n"
       "Reproduces the main experiment of Maslov et al. (EarthArXiv, doi 10.31223/X5QN1V): "
       "a compact CNN classifies the centre pixel of 33 × 33 patches of 11 features into 8 "
       "classes, trained with 6-fold cross-validation; confident learning prunes ambiguous "
       "facies labels; the models are retrained and evaluated on cleaned and unpruned labels.\n\n"
       "Run it top to bottom in JupyterLab, or headless: `make reproduce DATA=... STATS=...`. "
       "Finished models are reused (delete them or set `force = True` to retrain); an "
       "interrupted model resumes from its last epoch."),
    code("# parameters\n"
         "dataset = \"demo/patches.h5\"   # patch folder or pack (python -m utils.dataset pack)\n"
         "stats = \"demo/stats.json\"     # normalisation statistics (JSON or the study's pickle)\n"
         "k = 6\n"
         "n_epochs = 1000\n"
         "initial_learning_rate = 1e-3\n"
         "batch_size = 512\n"
         "features = [\"optical\", \"elevation\", \"slope\", \"shadow_mask\", \"hillshade\", "
         "\"proximity\"]\n"
         "weights_dir = \"weights\"\n"
         "logs_dir = \"logs\"\n"
         "results_dir = \"results\"\n"
         "seed = 0\n"
         "force = False\n"
         "planted_noise = None  # demo only: CSV of deliberately flipped labels to score pruning\n"
         "study_logs = None     # folder of the study's published logs: draws the paper's curves",
         metadata={"tags": ["parameters"]}),
    code("import json\n"
         "from pathlib import Path\n\n"
         "import numpy as np\n"
         "import pandas as pd\n"
         "from IPython.display import display\n\n"
         "from utils import cleaning, evaluation, plots, training\n"
         "from utils.classes import CLASSES\n"
         "from utils.dataset import load_patches\n\n"
         "results = Path(results_dir)\n"
         "results.mkdir(parents=True, exist_ok=True)\n"
         "train_kwargs = dict(n_epochs=n_epochs, initial_learning_rate=initial_learning_rate,\n"
         "                    batch_size=batch_size, seed=seed, force=force)\n"
         "dirs = dict(k=k, weights_dir=weights_dir, logs_dir=logs_dir)"),
    md("## Data\n\nAll patches, min–max normalised with the global statistics. For test fold "
       "*t* the validation fold is (*t* − 1) mod *k* and the remaining folds train."),
    code("data = load_patches(dataset, features=features, stats=stats)\n"
         "meta = data.meta\n"
         "print(f\"{len(data)} patches, features {data.feature_names}\")\n"
         "display(pd.crosstab(meta['fold'], pd.Categorical.from_codes(data.y, CLASSES), "
         "margins=True))"),
    md("## 1. Training before confident learning\n\nAdam with a cosine-decay learning rate, "
       "the focal loss, class × scene sample weights, flips/rotations/contrast/brightness "
       "augmentation and label smoothing 0.1. Each model keeps the weights of its best "
       "validation-mIoU epoch."),
    code("before = training.cross_validate(data, 'beforeconfidentlearning', "
         "**dirs, **train_kwargs)\n"
         "fig = plots.plot_training_curves(plots.read_logs(logs_dir, "
         "'beforeconfidentlearning', k),\n"
         "                                 'Training curves before confident learning')\n"
         "plots.save_figure(fig, results / 'training_curves_before')"),
    md("The study's own training curves (1000 epochs per model), when its published logs "
       "are given:"),
    code("if study_logs:\n"
         "    for stage in training.STAGES:\n"
         "        fig = plots.plot_training_curves(plots.read_logs(study_logs, stage, k),\n"
         "                                         f'Study logs: {stage}')\n"
         "        plots.save_figure(fig, results / f'study_training_curves_{stage}')"),
    md("## 2. Confident learning\n\nOut-of-fold probabilities (each fold's test patches "
       "predicted by its own model) go to cleanlab's `find_label_issues` "
       "(`filter_by=\"confident_learning\"`, ranked by self-confidence). Only the five "
       "facies classes may be pruned; shadow, water and cloud labels are kept."),
    code("issues = cleaning.find_label_issues(data.y, before['probs'], meta['file'].to_numpy())\n"
         "issues.to_csv(results / 'label_issues.csv', index=False)\n"
         "pruned = np.zeros(len(data), bool)\n"
         "pruned[issues['index'].to_numpy()] = True\n"
         "totals = pd.Series(np.bincount(data.y, minlength=len(CLASSES)), index=list(CLASSES))\n"
         "fig = plots.plot_pruned_per_class(cleaning.pruned_per_class(issues), totals)\n"
         "plots.save_figure(fig, results / 'pruned_per_class')\n"
         "print(f\"{pruned.sum()} of {len(data)} labels pruned "
         "({100 * pruned.mean():.1f} %)\")\n"
         "cl_score = None\n"
         "if planted_noise:\n"
         "    planted = set(pd.read_csv(planted_noise)['file'])\n"
         "    cl_score = cleaning.score_against_planted(issues, planted)\n"
         "    print('against planted noise:', cl_score)"),
    md("## 3. Retraining after confident learning\n\nThe pruned patches are excluded from "
       "training, validation and the cleaned test sets."),
    code("after = training.cross_validate(data, 'afterconfidentlearning', exclude=pruned, "
         "**dirs, **train_kwargs)\n"
         "fig = plots.plot_training_curves(plots.read_logs(logs_dir, "
         "'afterconfidentlearning', k),\n"
         "                                 'Training curves after confident learning')\n"
         "plots.save_figure(fig, results / 'training_curves_after')"),
    md("## 4. Evaluation\n\nOn the test folds: macro F1 on the cleaned labels and on all "
       "(unpruned) labels, glacier-wise macro F1 (mean ± std over glaciers), per-class "
       "scores and the row-normalised confusion matrix. The paper reports 82 % (cleaned), "
       "74 % (unpruned) and 82.3 ± 10.5 % glacier-wise."),
    code("glaciers = meta['glacier'].to_numpy()\n"
         "metrics = {}\n"
         "for name, run, keep in [('before', before, None), ('after', after, ~pruned)]:\n"
         "    metrics[name] = evaluation.summarise(data.y, run['probs'], glaciers, keep)\n"
         "    sel = slice(None) if keep is None else keep\n"
         "    y_pred = run['probs'].argmax(1)\n"
         "    table = evaluation.per_class_table(data.y[sel], y_pred[sel])\n"
         "    table.to_csv(results / f'per_class_{name}.csv')\n"
         "    evaluation.glacier_wise_f1(data.y[sel], y_pred[sel], glaciers[sel]).to_csv(\n"
         "        results / f'glacier_f1_{name}.csv')\n"
         "    cm = evaluation.normalised_confusion(data.y[sel], y_pred[sel])\n"
         "    fig = plots.plot_confusion(cm, f'{name} confident learning')\n"
         "    plots.save_figure(fig, results / f'confusion_{name}')\n"
         "metrics['n_pruned'] = int(pruned.sum())\n"
         "metrics['confident_learning_vs_planted'] = cl_score\n"
         "(results / 'metrics.json').write_text(json.dumps(metrics, indent=2))\n"
         "display(pd.DataFrame({k: v for k, v in metrics.items() if k in ('before', 'after')})"
         ".round(3))\n"
         "display(table.round(3))"),
    md("## 5. Predictions for calibration\n\nThe 'after' models' validation and test "
       "probabilities per fold, read by `confidence_calibration.ipynb`."),
    code("np.savez_compressed(\n"
         "    results / 'predictions.npz', y=data.y, fold=meta['fold'].to_numpy(), "
         "pruned=pruned,\n"
         "    probs_before=before['probs'], probs_after=after['probs'],\n"
         "    **{f'val_index_{t}': after['val_index'][t] for t in range(k)},\n"
         "    **{f'val_probs_{t}': after['val_probs'][t] for t in range(k)})\n"
         "print('results in', results.resolve())"),
]
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "main.ipynb")
