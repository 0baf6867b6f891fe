"""Bousquet et al., *From optimal transport to generative modeling: the VEGAN cookbook*, 2017
(arXiv:1705.07642), made concrete by Tolstikhin et al., *Wasserstein Auto-Encoders*, ICLR 2018
(arXiv:1711.01558): penalized OT (WAE-MMD, WAE-GAN) against the VAE."""
