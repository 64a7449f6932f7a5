"""Docstring pieces shared by the estimators (each parameter is described once)."""

PARAMS = {
    "n_experts": """n_experts : int, default=8
    Number of expert networks.""",
    "expert_hidden_sizes": """expert_hidden_sizes : int or sequence of int, default=(64,)
    Layer widths of each expert MLP (ReLU-style activation after each layer,
    as in the MMoE paper). The last width is the size of the mixture each
    tower reads.""",
    "gate_hidden_sizes": """gate_hidden_sizes : int or sequence of int, default=()
    Optional hidden layers of each gate. Empty: the gate is
    ``softmax(W x)``, as in the MMoE paper.""",
    "top_k": """top_k : int, default=None
    Sparse gating: each gate keeps its ``top_k`` largest experts per row and
    gives the others exactly zero weight (softmax over the kept ones), as the
    MMoE paper suggests for serving cost; gradients flow through the
    selected experts. None keeps every expert.""",
    "n_shared_experts": """n_shared_experts : int, default=1
    Experts shared by all tasks, at each level.""",
    "n_task_experts": """n_task_experts : int, default=1
    Experts of each task, at each level.""",
    "n_levels": """n_levels : int, default=2
    Number of extraction levels (``n_levels=1`` is CGC).""",
    "hidden_sizes": """hidden_sizes : int or sequence of int, default=(64, 16)
    Hidden layer widths of each task's network (each followed by the
    activation); a linear output layer per task follows.""",
    "coupling": """coupling : float, default=0.01
    Strength of the L2 penalty tying the tasks' hidden-layer parameters to
    their mean (0: independent networks).""",
    "rank": """rank : int, default=8
    Tucker rank of each hidden layer's task-weight tensor, in each mode
    (capped by the mode's size).""",
    "cvr_objective": """cvr_objective : {"esmm", "ips", "dr"}, default="esmm"
    How a conditional task's output (pCVR) is trained. "esmm": through the
    joint probability only (ESMM). "ips": adds a counterfactual CVR risk, the
    conversion loss on rows where the parent (click) is positive weighted by
    the inverse of the parent's predicted probability (the propensity,
    detached from the gradient and clipped at ``propensity_clip``), averaged
    over every impression (ESCM²-IPS; Multi-IPW with ``ctcvr_weight=0``).
    "dr": the doubly robust risk, with an imputation head (one extra network
    output per conditional task, which ``predict`` does not return) that
    imputes the conversion of every impression (ESCM²-DR; Multi-DR with
    ``ctcvr_weight=0``). Formulas: :class:`sklearn_mmoe.nn.MaskedMultiTaskLoss`.
    The reported and monitored losses (``loss_curve_``, early stopping) leave
    the counterfactual risk out: they are ESMM's (click and joint) losses for
    every objective, since the risk's value depends on the model's own
    propensities. See docs/esmm.md for a simulation comparing them.""",
    "cvr_weight": """cvr_weight : float, default=1.0
    Weight (>= 0) of the counterfactual CVR risk in the conditional task's
    loss ("ips" and "dr"; ignored by "esmm").""",
    "ctcvr_weight": """ctcvr_weight : float, default=1.0
    Weight (>= 0) of ESMM's joint (CTCVR) loss in the conditional task's loss
    ("ips" and "dr"; 0 gives Multi-IPW / Multi-DR; "esmm" ignores it: use
    ``task_weights``). It and ``cvr_weight`` cannot both be 0.""",
    "propensity_clip": """propensity_clip : float in (0, 1], default=0.01
    Lower bound of the propensity ("ips" and "dr"): each inverse-propensity
    weight is at most ``1 / propensity_clip`` (100 by default). Lower values
    reduce the bias of clicked rows with a small predicted click rate and
    raise the variance of the loss.""",
    "propensity_normalization": """propensity_normalization : {"none", "batch"}, default="none"
    "batch" divides the inverse-propensity weights by their mean over each
    batch's rows (self-normalised IPS: less variance, a small bias).""",
    "bottom_hidden_sizes": """bottom_hidden_sizes : int or sequence of int, default=(128,)
    Layer widths of the bottom MLP shared by all tasks.""",
    "tower_hidden_sizes": """tower_hidden_sizes : int or sequence of int, default=(16,)
    Hidden layer widths of each task's tower (may be empty: the tower is then
    one linear output layer).""",
    "class_weight": """class_weight : dict, list or "balanced", default=None
    Weights of the classes in each task's loss, as in scikit-learn's
    classifiers: None (every class weighs 1); "balanced", for every
    classification task: class ``c`` weighs ``n / (n_classes * n_c)``, counted
    over the task's observed labels with their sample weights (as
    :func:`sklearn.utils.class_weight.compute_class_weight`); a dict
    ``{label: weight}``, for 1-D y or a single task (classes it leaves out
    weigh 1); or a list with one entry per task, each None, "balanced" or a
    dict. Missing labels never count in the balance; a conditional task
    (ESMM's conversion) counts only the rows where its parent task is
    positive, where its own label exists, and its weights apply to its joint
    training label (class 0 where the parent is negative). An entry's class
    weight multiplies its ``sample_weight``; each task's loss being a
    weighted mean, only the ratios within a task matter. "balanced" is
    computed on each ``fit``'s data; ``partial_fit`` takes dicts only.""",
    "common": """activation : {"relu", "tanh", "logistic", "gelu", "elu", "leaky_relu", \
"silu", "identity"}, default="relu"
    Activation after every hidden layer.

dropout : float in [0, 1), default=0.0
    Dropout probability after every hidden activation, during training.

categorical_features : "from_dtype", array-like of str, int or bool, or None, \
default="from_dtype"
    Columns of X to embed as categories rather than read as numbers.
    "from_dtype": the ``category``, ``object`` and string columns of a
    DataFrame (no column of an array); or column names, indices, a boolean
    mask; None: every column is numeric. Each categorical column gets an
    embedding table; its row 0 stands for missing (NaN, None, ``pd.NA``),
    rare and unseen categories, so new categories at predict time never
    fail. Values are compared as strings unless the column holds numbers.
    A categorical column's vocabulary is fixed by the first fit (later
    ``partial_fit`` calls map new categories to row 0).

embedding_dim : "auto", int or dict, default="auto"
    Embedding width of each categorical column: "auto" is
    ``min(32, round(1.6 * n ** 0.56))`` for a table of ``n`` rows (fastai's
    rule, capped); an int for all; a dict ``{column name or index: "auto" or
    int}`` (columns not named: "auto").

min_frequency : int, float or None, default=None
    Categories seen fewer times than this at fit (a fraction of the rows if
    a float) share the "unknown" row 0, as in
    :class:`~sklearn.preprocessing.OrdinalEncoder`, which learns the
    vocabulary.

max_categories : int or None, default=None
    Largest table size of a categorical column, row 0 included; the most
    frequent categories get their own rows. A column with more than 99,999
    distinct values raises a ``ValueError`` unless this or
    ``min_frequency`` caps it.

numeric_encoding : {"auto", "periodic", "quantile", "piecewise_linear"} or None, \
default="auto"
    How numeric columns enter the network (a column holding only 0 and 1
    always stays itself). "quantile": each column is mapped to a standard
    normal through its training distribution (128 quantiles, as
    :class:`~sklearn.preprocessing.QuantileTransformer` with
    ``output_distribution="normal"`` does, inside the network): raw columns
    of any scale work, heavy tails and outliers stay bounded.
    "periodic": the normal scores of "quantile", then each column gets its
    own small embedding (Gorishniy et al., NeurIPS 2022, "PLR"):
    ``relu(W_f [cos(2 pi c_f z), sin(2 pi c_f z)] + b_f)`` with 16 trained
    frequencies ``c_f`` (drawn from N(0, 3^2)) and 16 output units per
    column, so that the network can follow sharp, non-monotone responses
    to a single column (thresholds, spikes) as gradient boosting does.
    "piecewise_linear": each column becomes ``n_bins`` values, its
    piecewise-linear encoding over quantile bins (Gorishniy et al.; see
    :class:`~sklearn_mmoe.nn.TabularEmbedding`): the next layer learns a
    piecewise-linear function of the column. None: the values as given
    (scale them in the Pipeline). "auto": "periodic" for dense X of more
    than 10,000 rows when the fit early-stops (as ``early_stopping="auto"``
    does there) and at most 64 numeric columns need encoding; "quantile" for other dense X
    (small data, or so many columns that 16 values each would make the
    first layer too wide; the periodic embeddings fit noise there and on
    smooth relations); None for sparse X.

n_bins : int, default=16
    Quantile bins per numeric column for ``numeric_encoding="piecewise_linear"``
    (fewer where a column has fewer distinct quantiles).

optimizer : {"adam", "adamw", "sgd", "rmsprop", "adagrad"} or \
torch.optim.Optimizer subclass, default="adam"
    Optimizer.

optimizer_kwargs : dict, default=None
    Further keyword arguments of the optimizer, e.g. ``{"momentum": 0.9}``
    for SGD or ``{"betas": (0.9, 0.99)}`` for Adam. A named optimizer uses
    PyTorch's fused implementation (``fused=True``) where the installed
    torch has one for the device and these arguments; it is faster and
    equal to the default implementation up to float32 rounding. Pass
    ``{"fused": False}`` or ``{"foreach": ...}`` to choose another.

learning_rate : float, default=3e-3
    Learning rate (> 0).

weight_decay : float, default=0.0
    Weight decay (L2 penalty) applied by the optimizer (>= 0).

ema_half_life : float or None, default=1.0
    ``fit`` keeps an exponential moving average (EMA) of the weights, with
    this half-life in epochs (> 0), and the model keeps the average: the
    validation score early stopping monitors is the average's, and so are
    ``validation_loss_curve_`` and the restored best epoch
    (``loss_curve_`` is the training loss of the optimizer's own weights).
    Averaging smooths the noise of the last steps, as a decaying learning
    rate would: 0.0006 to 0.0012 AUC on Adult and Census-Income (tuning
    splits, docs/performance.md). None trains without averaging.
    The optimizer's own weights and the average's state are kept with the
    model, so ``partial_fit`` and ``warm_start`` continue both exactly.

batch_size : int or "auto", default="auto"
    Rows per mini-batch. "auto": 256, the size chosen with the other
    defaults on tuning splits of Adult and Census-Income (512 above 10,000
    rows until 2026-12-02: as accurate, and more epochs to early stopping;
    see docs/performance.md). On a GPU, larger batches make epochs faster.
    The size used is ``batch_size_``.

max_epochs : int, default=200
    Maximum number of passes over the training data.

tol : float, default=1e-4
    Minimum improvement of the monitored quantity (training loss, or the
    validation ``scoring`` with early stopping) that counts as one.

n_iter_no_change : int, default=3
    Training stops after this many epochs without an improvement of at least
    ``tol`` (the patience).

early_stopping : "auto" or bool, default="auto"
    If True, hold out ``validation_fraction`` of the training rows, monitor
    ``scoring`` on them, stop after ``n_iter_no_change`` epochs without an
    improvement and restore the weights of the best epoch. If False, stop
    when the training loss stops improving. "auto": True when ``fit`` gets
    more than 10,000 rows (HistGradientBoosting's rule). ``partial_fit``
    never holds rows out. The split is random over rows (not stratified,
    because labels may be missing), and every task keeps observed labels
    on both sides.

validation_fraction : float in (0, 1), default=0.1
    Fraction of the training rows held out for early stopping.

scoring : str, default="loss"
    What early stopping monitors on the validation rows: "loss" (the masked
    training loss, lower is better) or the name of a masked metric of
    :mod:`sklearn_mmoe.metrics` ("roc_auc", "average_precision",
    "log_loss", "accuracy", "balanced_accuracy" for classification; "r2",
    "mean_squared_error", "root_mean_squared_error", "mean_absolute_error"
    for regression), averaged over the tasks. A conditional task (ESMM) is
    scored on its joint probability against the joint label.

task_weights : array-like of shape (n_tasks,), default=None
    Weight of each task's loss in the total loss (default: all 1). Each
    task's loss is the mean over its observed rows.

loss_weighting : {"uncertainty", "dwa", "gradnorm", "decay", "pcgrad"} or \
LossWeighting, default=None
    Strategy that turns the per-task losses into the training objective, on
    top of ``task_weights``: a name for its defaults, or an instance from
    :mod:`sklearn_mmoe.weighting` (e.g. ``DWA(temperature=1.0)``). None: the
    fixed ``task_weights``. "pcgrad" and "gradnorm" compute one gradient per
    task at each step. The reported and monitored losses always use the
    fixed ``task_weights``.

callbacks : list of skorch callbacks or (name, callback) tuples, default=None
    Extra `skorch callbacks <https://skorch.readthedocs.io/en/stable/callbacks.html>`_
    run during training (e.g. ``skorch.callbacks.LRScheduler``). They are
    copied at fit time. skorch's ``EpochScoring`` does not apply (the net's
    targets are per-task label and weight pairs): per-task validation
    scores are in the history and in ``validation_task_scores_`` (see
    ``scoring``).

warm_start : bool, default=False
    If True and the model is fitted, ``fit`` continues training from the
    fitted weights and optimizer state for ``max_epochs`` more epochs (the
    tasks, classes and target scaling of the first fit are kept). Batch order
    and dropout depend only on ``random_state`` and the epoch number, so a
    fit resumed from a saved model reaches the weights of an uninterrupted
    one.

nan_loss : {"raise", "restore"}, default="raise"
    What to do when an epoch's loss is NaN or infinite: raise a
    ``FloatingPointError`` naming the epoch, or restore the weights of the
    last epoch with a finite loss, stop, and warn.

device : str or torch.device, default="cpu"
    Device to train and predict on, e.g. ``"cuda"``. The data are moved to
    it once per fit.

random_state : int, RandomState instance or None, default=None
    Seeds weight initialisation, dropout, batch order and the validation
    split. Pass an int for reproducible results across calls.

verbose : int, default=0
    If > 0, print one line per epoch to standard output: the training loss
    and each task's, and with early stopping the validation loss and score
    with each task's; a star marks the best epoch so far. Plain text (no
    colour codes). When standard error is a terminal, a progress bar also
    runs over each epoch's batches.""",
}

ATTRIBUTES = {
    "mixed": """classes_ : list
    Sorted labels of each classification task, None for a regression task
    (for 1-D y: that task's entry).

task_types_ : list of str
    Loss type of each task: "binary", "multiclass" or "regression" (the
    vocabulary of :mod:`sklearn_mmoe.nn`; ``task_types`` accepts it).""",
    "classes": """classes_ : ndarray or list of ndarray
    Labels of each task, sorted. An array for 1-D y, a list with one array
    per task for 2-D y.""",
    "common": """n_tasks_ : int
    Number of tasks (1 for 1-D y).

net_ : skorch.NeuralNet
    The trained skorch net; ``net_.module_`` is the PyTorch network (a module
    of :mod:`sklearn_mmoe.nn`) and ``net_.history`` the training history.

n_iter_ : int
    Number of epochs run.

loss_curve_ : list of float
    Training loss at the end of each epoch.

task_loss_curve_ : ndarray of shape (n_epochs, n_tasks)
    Each task's training loss at each epoch (the mean of its batch losses).

early_stopping_ : bool
    Whether the last ``fit`` held out validation rows and stopped on them.

batch_size_ : int
    Rows per mini-batch in the last ``fit`` or ``partial_fit`` (``batch_size``,
    or what ``"auto"`` chose).

validation_loss_curve_ : list of float
    Validation loss at each epoch (only with early stopping).

validation_task_loss_curve_ : ndarray of shape (n_epochs, n_tasks)
    Each task's validation loss at each epoch (only with early stopping).

validation_score_ : ndarray of shape (n_epochs,)
    The early-stopping score at each epoch, greater is better (the negated
    loss for ``scoring="loss"`` and for error metrics), as in
    HistGradientBoosting (only with early stopping).

validation_task_scores_ : ndarray of shape (n_epochs, n_tasks)
    Each task's share of ``validation_score_`` (only with early stopping).

best_validation_loss_ : float
    Best validation loss (only with early stopping).

best_epoch_ : int
    The epoch (from 1) whose weights are kept: the best ``validation_score_``
    (only with early stopping).

categorical_features_ : ndarray of int
    Indices of the columns of X embedded as categories.

categories_ : list of ndarray
    Known categories of each categorical column (as compared: strings or
    floats); category ``categories_[j][i]`` has embedding row ``i + 1``.

n_categories_ : list of int
    Embedding table size of each categorical column, row 0 included.

embedding_dims_ : list of int
    Embedding width of each categorical column.

numeric_encoding_ : "periodic", "quantile", "piecewise_linear" or None
    The numeric encoding in use.

n_features_in_ : int
    Number of features seen during fit.

feature_names_in_ : ndarray of shape (``n_features_in_``,)
    Names of the features seen during fit, when X has string column names.""",
}

KIND = {
    "classifier": """Each task is a classification task (binary or multiclass, any label
values, strings included); labels are encoded per task. ``predict`` returns
the original labels with y's shape and ``predict_proba`` one probability
array per task.""",
    "mixed": """Tasks can be of different kinds in one model: binary or multiclass
classification (any label values) and regression (standardised per task,
squared error), given by ``task_types``. A binary task can be declared
*conditional* on another binary task (ESMM): its label only exists where the
other task is positive, and it is trained through the joint probability on
every row where the other task is observed.""",
    "esmm": """``y`` has two binary columns, click and conversion; conversion is 0 or
missing where click is 0 (a conversion label exists only on clicked rows).
pCTCVR = pCTR * pCVR is trained against "click and conversion" on every
impression, and pCTR against click, so pCVR is learned over the entire
impression space rather than on clicked rows only (Ma et al., SIGIR 2018).
``predict_proba(X)`` returns ``[pCTR, pCVR]`` (pCVR conditional on a click) and
``predict_joint_proba(X)`` returns ``[pCTR, pCTCVR]``, each as
``(n_samples, 2)`` arrays; ``predict`` and ``score`` refer to the tasks as
given (conversion scored on clicked rows only). With a single column it is a
plain click model.""",
    "regressor": """Each task is a regression task trained with the squared error. Each
task's target is standardised (sample-weighted mean and standard deviation
of its observed values) for training, so ``task_weights`` weigh losses on a
common scale; predictions are returned on the original scale.""",
}

MASKS = """A missing label (NaN, or ``None`` / ``pd.NA`` in object or nullable columns)
marks a row outside that task's sample space: it adds nothing to that task's
loss, gradient, validation loss or score, and each task's loss is averaged
over its observed rows only. 1-D ``y`` is a single task and behaves like an
ordinary single-output scikit-learn estimator."""


def build_docstring(summary, architecture, kind, params, examples, see_also=""):
    """Assemble a numpydoc class docstring from the shared pieces.

    ``params`` lists keys of PARAMS, or full parameter descriptions.
    """
    parameters = [*(PARAMS.get(p, p) for p in params), PARAMS["common"]]
    if kind in ("classifier", "esmm"):  # last in a classifier's signature
        parameters.append(PARAMS["class_weight"])
    parameters = "\n\n".join(parameters)
    attributes = ATTRIBUTES["common"]
    if kind in ("classifier", "esmm"):
        attributes = ATTRIBUTES["classes"] + "\n\n" + attributes
    if kind == "mixed":
        attributes = ATTRIBUTES["mixed"] + "\n\n" + attributes
    sections = [
        summary,
        architecture,
        KIND[kind] + " " + MASKS,
        "Parameters\n----------\n" + parameters,
        "Attributes\n----------\n" + attributes,
    ]
    if see_also:
        sections.append("See Also\n--------\n" + see_also)
    sections.append("Examples\n--------\n" + examples)
    return "\n\n".join(sections) + "\n"
