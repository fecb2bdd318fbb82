"""Students and how they are made (PaCKD, HPEC'23; GTN, BMVC'24); knows nothing of hardware.

traces    GAP kernels (bc, cc, pr, sssp, bfs) on seeded RMAT graphs -> LLC load traces (ML-DPC text)
map_data  address tokens in, 256-bit future block-delta bitmap out; time split; ``load_splits``
zoo       ``build(arch, preset)`` for lstm / mixer / resnet / swa; ``load_checkpoint``
distill   KD loss; methods none / kd / packd (k-means++ clusters, one teacher per cluster)
metrics   micro-F1 at the validation threshold, F1 at 0.5, all-ones floor, frequency baseline
digits_data  the digits workload's data (sklearn 8x8 digits, stratified 60/20/20); quant re-exports it
gtn_pool  digits CNN students ``dDwW``, their weight-sharing supernet, sandwich sampling, checkpoints;
          ``Family``: what a pool of one architecture needs (digits here, MAP in gtn_map)
gtn_map   MAP ResNet students ``rDwW`` (r1w32 = PaCKD's student), their supernet, trace folders
gtn       Generic Teacher Network: KD-aware teacher training, standard teachers, standalone students
gtn_eval  the GTN comparison (generic / standard / custom / no KD, seeds) behind `paretofab gtn`
datafree  data-free KD: BN teacher, DeepInversion, DAFL, DM condensation / few-shot side information,
          KD on synthetic samples only, the sealed-split guard; `paretofab datafree`
"""
