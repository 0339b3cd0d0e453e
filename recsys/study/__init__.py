"""The reproducibility study (issue 7): a grid of activations × noise sources, R replicas per cell, PD between
replicas and accuracy on held-out data, compared with ReLU and ReLU ensembles (Shamir & Lin 2022, Fig. 4).

- `grid`: study config → validated cells (`expand_grid`), per-replica seeds.
- `data`: data generation/preprocessing, the train/held-out split, held-out scoring of SavedModels.
- `runner`: trains (resumably) and scores each cell, writes results.json / results.md / pd_vs_accuracy.png.
- `analysis`: PD over replica pairs with bootstrap intervals, ensembles, accuracy, AUC-loss change vs ReLU.
- `sources`: where the PD comes from: by the training frequency of the example's rarest value, and each replica
  against its own checkpoint before the final one (jitter vs basin).
- `report`: results.md. The figure is `recsys.plots.study`.

Entry point: `python -m pipelines.study --config=configs/study_<name>.py --workdir=<dir>` (docs/study.md).
"""
