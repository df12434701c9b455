"""The course's classic models with their own learning rules (lectures 1 and 9), as pure
functions over parameter dicts (no classes holding arrays, explicit keys):

* `fnn.classic.neurons`: the McCulloch–Pitts neuron, the perceptron (unipolar and bipolar,
  ``Δw = α x (y_d − y)`` and the ``α x y_d`` variant) and Adaline (LMS, ``w ← w + 2μ ε x``);
* `fnn.classic.som`: Kohonen's self-organizing map (online and batch rules, rectangular and
  hexagonal grids, quantization and topographic errors, U-matrix);
* `fnn.classic.rbm`: the binary restricted Boltzmann machine (CD-k, persistent CD, free energy,
  Gibbs sampling, exact log-likelihood for tiny models).
"""
from fnn.classic import neurons, rbm, som
from fnn.classic.neurons import (
    NeuronHistory, adaline_epoch, adaline_output, init_neuron, lms_update, mcculloch_pitts,
    net_input, neuron_history, perceptron_epoch, perceptron_output, perceptron_update, scan_epochs,
    step, train_adaline, train_perceptron)
from fnn.classic.rbm import (
    RBMHistory, cd_gradient, cd_update, contrastive_gradient, energy, free_energy, gibbs_chain,
    gibbs_step, hidden_probabilities, init_rbm, log_likelihood, log_partition, pcd_gradient,
    reconstruct, reconstruction_error, sample_bernoulli, train_rbm, visible_probabilities)
from fnn.classic.som import (
    SOMHistory, grid, grid_distances, init_som, kohonen_decay, label_units, neighbourhood,
    quantization_error, som_batch_update, som_update, squared_distances, topographic_error,
    train_som, u_matrix, winner)

__all__ = [
    # neurons
    "NeuronHistory", "adaline_epoch", "adaline_output", "init_neuron", "lms_update",
    "mcculloch_pitts", "net_input", "neuron_history", "perceptron_epoch", "perceptron_output",
    "perceptron_update",
    "scan_epochs", "step", "train_adaline", "train_perceptron",
    # som
    "SOMHistory", "grid", "grid_distances", "init_som", "kohonen_decay", "label_units",
    "neighbourhood", "quantization_error", "som_batch_update", "som_update", "squared_distances",
    "topographic_error", "train_som", "u_matrix", "winner",
    # rbm
    "RBMHistory", "cd_gradient", "cd_update", "contrastive_gradient", "energy", "free_energy",
    "gibbs_chain", "gibbs_step", "hidden_probabilities", "init_rbm", "log_likelihood",
    "log_partition", "pcd_gradient", "reconstruct", "reconstruction_error", "sample_bernoulli",
    "train_rbm", "visible_probabilities",
    # modules
    "neurons", "rbm", "som",
]
