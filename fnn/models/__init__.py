"""Ready-made models built from `fnn.layers`."""
from fnn.models.mlp import mlp
from fnn.models.autoencoders import (
    autoencoder, conv_autoencoder, decode, decoder_of, dense_autoencoder, denoising_autoencoder,
    encode, encoder_of)
# the module `fnn.models.vae` keeps its name: its `vae(encoder, decoder)` is not re-exported here
from fnn.models.vae import VAEOutput, dense_vae, elbo_loss, kl_divergence, sample_prior
# convolutional networks; the generic builders `vgg.vgg`, `resnet.resnet` and
# `densenet.densenet` stay in their modules (re-exported they would hide the module names)
from fnn.models.classic_cnns import alexnet, keras_cnn, lenet5
from fnn.models.conv_blocks import ReLU6, conv_bn
from fnn.models.densenet import dense_block, dense_connection, densenet121
from fnn.models.inception import googlenet, inception_module
from fnn.models.resnet import basic_block, bottleneck_block, resnet18, resnet34, resnet50
from fnn.models.segmentation import deconvnet, fcn
from fnn.models.separable import inverted_residual, mobilenet_v1, mobilenet_v2, xception
from fnn.models.vgg import vgg11, vgg16
# the builder `seq2seq.seq2seq` stays in its module (re-exported it would hide the module name)
from fnn.models.seq2seq import greedy_decode
# models by name for configs: `[model] kind = "lenet5"` or a `[[model.layers]]` list
from fnn.models.registry import build_layers, build_model

__all__ = ["mlp"]
__all__ += ["autoencoder", "conv_autoencoder", "dense_autoencoder", "denoising_autoencoder", "encoder_of", "decoder_of",
            "encode", "decode", "dense_vae", "VAEOutput", "elbo_loss", "kl_divergence",
            "sample_prior"]
__all__ += ["alexnet", "basic_block", "bottleneck_block", "conv_bn", "deconvnet", "dense_block",
            "dense_connection", "densenet121", "fcn", "googlenet", "inception_module",
            "inverted_residual", "keras_cnn", "lenet5", "mobilenet_v1", "mobilenet_v2", "ReLU6",
            "resnet18", "resnet34", "resnet50", "vgg11", "vgg16", "xception"]
__all__ += ["build_layers", "build_model"]
__all__ += ["greedy_decode"]
