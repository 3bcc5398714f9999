using TorchSharp;
using static TorchSharp.torch;

namespace RsCapRet.Model.Tests;

/// <summary>Low-rank adapters (issue 34's chat adapter): what an adapted layer computes, merging, and a decoder's adapters.</summary>
public class AdaptableLinearTests
{
    private static LlamaForCausalLM TinyLlama() => new(new LlamaConfig
    {
        HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 2, VocabSize = 40, RmsNormEps = 1e-5, MaxPositionEmbeddings = 32,
    });

    [Fact]
    public void AnAdapterStartsAsTheLayerAndComputesWPlusScaledBA()
    {
        manual_seed(7);
        using var layer = new AdaptableLinear(12, 8);
        using var x = randn(3, 5, 12);
        using var plain = layer.forward(x).detach();
        layer.AddAdapter(rank: 4, alpha: 8);
        Assert.True(layer.HasAdapter);
        Assert.True(layer.forward(x).allclose(plain), "B starts at zero");

        var a = layer.named_parameters().Single(p => p.name == "lora_a").parameter;
        var b = layer.named_parameters().Single(p => p.name == "lora_b").parameter;
        Assert.Equal([4L, 12L], a.shape);
        Assert.Equal([8L, 4L], b.shape);
        using (no_grad()) b.copy_(randn(8, 4));
        using var expected = matmul(x, (layer.Weight + matmul(b, a) * 2.0).t());   // alpha / rank = 2
        Assert.True(layer.forward(x).allclose(expected, rtol: 1e-5, atol: 1e-5));

        // The same matrices merged into a plain copy of W compute the same.
        using var merged = new AdaptableLinear(12, 8);
        using (no_grad()) merged.Weight.copy_(layer.Weight);
        merged.Merge(a.detach(), b.detach(), alpha: 8);
        Assert.False(merged.HasAdapter);
        Assert.True(merged.forward(x).allclose(expected, rtol: 1e-5, atol: 1e-5));
        Assert.Contains("does not fit", Assert.Throws<ArgumentException>(() => merged.Merge(b.detach(), a.detach(), 8)).Message);
        Assert.Contains("already has", Assert.Throws<InvalidOperationException>(() => layer.AddAdapter(4, 8)).Message);
    }

    [Fact]
    public void ADecodersAdaptersTrainAloneAndKeepItsCheckpointNames()
    {
        using var llm = TinyLlama();
        var names = llm.named_parameters().Select(p => p.name).ToList();
        Assert.Contains("model.layers.0.self_attn.q_proj.weight", names);   // nn.Linear's names: Hugging Face checkpoints load unchanged
        Assert.Contains("model.layers.1.mlp.down_proj.weight", names);

        var count = llm.AddLowRankAdapters(rank: 2, alpha: 2, seed: 3);
        // 2 layers × (q, k, v, o: 2·(16+16) each; gate, up: 2·(16+24); down: 2·(24+16)).
        Assert.Equal(2 * (4 * 64 + 3 * 80), count);
        Assert.Equal(28, llm.AdapterTensors().Count);
        Assert.All(llm.named_parameters(), p => Assert.Equal(p.name.Contains(".lora_"), p.parameter.requires_grad));
        Assert.Equal(names, llm.named_parameters().Select(p => p.name).Where(n => !n.Contains(".lora_")).ToList());

        // The same seed gives the same A matrices (a run resumed or repeated adapts alike).
        using var again = TinyLlama();
        again.AddLowRankAdapters(rank: 2, alpha: 2, seed: 3);
        Assert.True(llm.AdapterTensors()[0].Tensor.allclose(again.AdapterTensors()[0].Tensor));

        var dir = Directory.CreateTempSubdirectory("rscapret-adapted-");
        try { Assert.Contains("low-rank adapters", Assert.Throws<InvalidOperationException>(() => llm.SavePretrained(dir.FullName)).Message); }
        finally { dir.Delete(true); }
    }
}
