using static TorchSharp.torch;

namespace RsCapRet.Model;

/// <summary>Weight initialisation for modules (or new parts of them) trained from scratch.</summary>
public static class ModuleInit
{
    /// <summary>GPT-style: N(0, 0.02) weights, zero biases, norms left as built.</summary>
    public static void GptStyle(nn.Module module)
    {
        using var _ = no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            if (name.EndsWith("norm.weight") || name.Contains("layer_norm") || name.Contains("layrnorm") || name.EndsWith("layernorm.weight")) continue;
            if (name.EndsWith(".bias")) p.zero_();
            else if (p.dim() >= 2 || name.EndsWith("class_embedding")) nn.init.normal_(p, 0, 0.02);
        }
    }
}
