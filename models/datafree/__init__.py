"""Data-free knowledge distillation on the digits workload (issue 18): a BatchNorm teacher, model
inversion (DeepInversion-style pixel optimization, a DAFL-style generator, a dynamic collection), dataset
condensation by distribution matching, and KD of a :mod:`models.gtn_pool` student on synthetic
samples only.

teacher     ``BNTeacher`` (conv-BN-ReLU digits CNN), its training and checkpoints
inversion   BatchNorm-statistic loss (``BNStatLoss``), image priors, ``deep_inversion``
dafl        ``Generator``, the DAFL losses (one-hot, activation, information entropy), its KD loop
condense    distribution-matching condensation (random-embedding mean matching), few-shot draws
kd          KD of a student on a fixed synthetic set, test-accuracy curve (reporting only)
replay      DAFL rehearsal: a VAE trained continually on generated images, or every image stored
dynamic     a generator under BN statistics + student-teacher disagreement, a bounded sample collection
guard       the sealed training split: any read by a data-free method fails the run
run         one comparison run (teacher, real-data KD, noise floor, a data-free method) -> results.csv
"""
