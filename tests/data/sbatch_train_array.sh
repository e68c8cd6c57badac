#!/bin/bash

# Parameters
#SBATCH --account=mimdet
#SBATCH --array=0-2%3
#SBATCH --constraint=volta32gb
#SBATCH --cpus-per-task=10
#SBATCH --error=/results/slurm/BATCH/%A_%a/%A_%a_0_log.err
#SBATCH --exclusive=user
#SBATCH --gpus-per-node=8
#SBATCH --hold
#SBATCH --job-name=mimdet-train-BATCH
#SBATCH --mem=480GB
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=8
#SBATCH --open-mode=append
#SBATCH --output=/results/slurm/BATCH/%A_%a/%A_%a_0_log.out
#SBATCH --partition=learnfair
#SBATCH --qos=high
#SBATCH --requeue
#SBATCH --signal=USR2@120
#SBATCH --time=4320
#SBATCH --wckey=submitit

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /results/slurm/BATCH/%A_%a/%A_%a_%t_log.out --error /results/slurm/BATCH/%A_%a/%A_%a_%t_log.err python -u -m submitit.core._submit /results/slurm/BATCH/%j
