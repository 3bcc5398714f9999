using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Model;

/// <summary>
/// A bias-free linear layer, its matrix named "weight" as nn.Linear's (checkpoints load unchanged), that can carry a
/// low-rank update (LoRA): y = x·Wᵀ + (x·Aᵀ)·Bᵀ·(alpha / rank), A [rank, in] random and B [out, rank] zero when
/// added, so a new adapter starts as the layer itself. It trains a chat copy of the decoder while W stays the
/// search's (issue 34); a loaded adapter is merged into W (<see cref="Merge"/>), so inference runs plain matrices.
/// </summary>
public sealed class AdaptableLinear : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private Parameter? lora_a, lora_b;
    private double _scale;

    public AdaptableLinear(long inFeatures, long outFeatures) : base(nameof(AdaptableLinear))
    {
        weight = new Parameter(empty(outFeatures, inFeatures));
        // nn.Linear's own initialisation, so a model built from scratch starts as it did before.
        nn.init.kaiming_uniform_(weight, a: Math.Sqrt(5));
        RegisterComponents();
    }

    public Tensor Weight => weight;

    /// <summary>Whether a low-rank update is attached (and trains).</summary>
    public bool HasAdapter => lora_a is not null;

    public override Tensor forward(Tensor x)
    {
        var y = F.linear(x, weight);
        if (lora_a is null) return y;
        return y + F.linear(F.linear(x.to_type(lora_a.dtype), lora_a), lora_b!).to_type(y.dtype) * Scalars.Of(_scale);
    }

    /// <summary>Attaches a trainable update of <paramref name="rank"/> (A from <paramref name="generator"/>, B zero); W is left as it is.</summary>
    public void AddAdapter(int rank, double alpha, Generator? generator = null)
    {
        if (lora_a is not null) throw new InvalidOperationException("This layer already has a low-rank adapter.");
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank), rank, "The adapter's rank must be at least 1.");
        var a = empty(rank, weight.shape[1], dtype: ScalarType.Float32, device: weight.device);
        // A as nn.Linear initialises a weight of its shape (Hu et al. 2021 §4): uniform in ±1/sqrt(in).
        var bound = 1.0 / Math.Sqrt(weight.shape[1]);
        using (no_grad()) a.uniform_(-bound, bound, generator: generator);
        lora_a = new Parameter(a);
        lora_b = new Parameter(zeros(weight.shape[0], rank, dtype: ScalarType.Float32, device: weight.device));
        register_parameter(nameof(lora_a), lora_a);
        register_parameter(nameof(lora_b), lora_b);
        _scale = alpha / rank;
    }

    /// <summary>Adds (alpha / rank)·B·A to W, from an adapter saved apart (A [rank, in], B [out, rank]).</summary>
    public void Merge(Tensor a, Tensor b, double alpha)
    {
        if (a.dim() != 2 || b.dim() != 2 || a.shape[0] != b.shape[1] || a.shape[1] != weight.shape[1] || b.shape[0] != weight.shape[0])
            throw new ArgumentException($"an adapter of A [{string.Join(", ", a.shape)}] and B [{string.Join(", ", b.shape)}] does not fit a [{string.Join(", ", weight.shape)}] layer");
        using var _ = no_grad();
        using var delta = matmul(b.to(ScalarType.Float32, weight.device), a.to(ScalarType.Float32, weight.device)) * Scalars.Of(alpha / a.shape[0]);
        weight.add_(delta.to_type(weight.dtype));
    }
}
