"""The tutorial's figures and widgets, one module per subject (notebooks call ``figures.plot_*``).

- ``base``: headless-aware widgets, saving, colours, the segmentation panel (outlines, error fills, Dice)
- ``schedules`` (01): the Karras grid, the scalings, sigma_data, noising, the curricula
- ``data`` (02): histograms, anisotropic diffusion, the slice viewer, resolution ceilings
- ``training`` (03): the loss term by term and validation Dice from log.jsonl; the live plot
- ``segmentation`` (00, 03): predicted vs expert masks, ensemble uncertainty
- ``model`` (04): the signals e_s, the SE gate weights, the FF-Parser's learned filter
- ``convergence`` (04, 05): Fig-3 / Fig-4 style curves, Dice per noise level
- ``sampling`` (06): one-step vs 2-step masks, a 2-step sample taken apart, sampling cost
"""
from .base import HEADLESS_ENV, interactive, overlay, seg_panel, wrap_label
from .convergence import noise_level_curves, plot_noise_level_dice, plot_snapshot_scores, plot_variant_convergence
from .data import (best_slice, diffusion_widget, plot_diffusion_sweep, plot_histograms, plot_items,
                   plot_resolution_ceilings, plot_slice, slice_viewer_widget)
from .model import fusion_inputs, gate_spread, plot_ffparser_filters, plot_gates, plot_signals
from .sampling import (multistep_widget, plot_multistep, plot_one_step_story, plot_sampling_cost, plot_two_step_anatomy,
                       speckle)
from .schedules import (noising_widget, plot_ct_schedule, plot_curricula, plot_karras_grids, plot_noising, plot_scalings,
                        plot_sigma_data_effect, scalings_widget, schedule_widget, sigma_axis, skip_out_crossing)
from .segmentation import (cases_widget, plot_cases, plot_predictions, plot_uncertainty, uncertainty_summary,
                           uncertainty_widget)
from .training import LiveCurves, loss_terms, loss_weights, plot_training_log, term_shares

__all__ = [
    "HEADLESS_ENV", "interactive", "overlay", "seg_panel", "wrap_label", "noise_level_curves",
    "plot_noise_level_dice", "plot_snapshot_scores", "plot_variant_convergence", "best_slice", "diffusion_widget",
    "plot_diffusion_sweep", "plot_histograms", "plot_items", "plot_resolution_ceilings", "plot_slice",
    "slice_viewer_widget", "fusion_inputs", "gate_spread", "plot_ffparser_filters", "plot_gates", "plot_signals",
    "multistep_widget", "plot_multistep", "plot_one_step_story", "plot_sampling_cost", "plot_two_step_anatomy", "speckle", "noising_widget",
    "plot_ct_schedule", "plot_curricula", "plot_karras_grids", "plot_noising", "plot_scalings",
    "plot_sigma_data_effect", "scalings_widget", "schedule_widget", "sigma_axis", "skip_out_crossing", "cases_widget",
    "plot_cases", "plot_predictions", "plot_uncertainty", "uncertainty_summary", "uncertainty_widget", "LiveCurves",
    "loss_terms", "loss_weights", "plot_training_log", "term_shares",
]
