using RsCapRet.Model.Checkpoints;
using RsCapRet.Training;
using static TorchSharp.torch;

namespace RsCapRet.Model.Tests;

public class ParityTests
{
    public static TheoryData<string> Cases => Fixtures.CasesIn(Fixtures.ParityRoot);

    [Theory]
    [MemberData(nameof(Cases))]
    public void VisionTowerReproducesReferenceOutputs(string fixture)
    {
        var dir = Path.Combine(Fixtures.ParityRoot, fixture);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(dir, "expected.safetensors"));
        using var vision = ClipVisionModel.FromPretrained(Path.Combine(dir, "clip-vision"));
        using var output = vision.Forward(expected.Read("vision.pixel_values"));
        Fixtures.AssertClose(output.LastHiddenState, expected.Read("vision.last_hidden_state"), $"{fixture} vision.last_hidden_state");
        Fixtures.AssertClose(output.PooledOutput, expected.Read("vision.pooler_output"), $"{fixture} vision.pooler_output");
        Fixtures.AssertClose(output.ImageEmbeds!, expected.Read("vision.image_embeds"), $"{fixture} vision.image_embeds");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LlamaReproducesReferenceOutputs(string fixture)
    {
        var dir = Path.Combine(Fixtures.ParityRoot, fixture);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(dir, "expected.safetensors"));
        using var llm = LlamaForCausalLM.FromPretrained(Path.Combine(dir, "llama"));
        using var output = llm.Forward(expected.Read("llama.input_ids"));
        Fixtures.AssertClose(output.LastHiddenState, expected.Read("llama.last_hidden_state"), $"{fixture} llama.last_hidden_state");
        Fixtures.AssertClose(output.Logits, expected.Read("llama.logits"), $"{fixture} llama.logits");
    }
}

public class RsCapRetParityTests
{
    public static TheoryData<string> Cases => Fixtures.CasesIn(Fixtures.ParityRoot);

    internal sealed record FixtureInfo(
        [property: System.Text.Json.Serialization.JsonPropertyName("visual_prefix_tokens")] int VisualPrefixTokens,
        [property: System.Text.Json.Serialization.JsonPropertyName("shared_dim")] int SharedDim,
        [property: System.Text.Json.Serialization.JsonPropertyName("ret_token_id")] int RetTokenId);

    /// <summary>The fixture's backbones through the product loaders, heads from expected.safetensors.</summary>
    internal static RsCapRetModel LoadFixtureModel(string dir, Checkpoint expected)
    {
        var info = System.Text.Json.JsonSerializer.Deserialize<FixtureInfo>(File.ReadAllText(Path.Combine(dir, "expected.json")))!;
        var llm = LlamaForCausalLM.FromPretrained(Path.Combine(dir, "llama"));
        var vision = ClipVisionModel.FromPretrained(Path.Combine(dir, "clip-vision"));
        var heads = new RsCapRetHeads(vision.Config.HiddenSize, llm.Config.HiddenSize, info.VisualPrefixTokens, info.SharedDim);
        expected.LoadInto(heads, "heads.");
        var model = new RsCapRetModel(llm, vision, heads, info.RetTokenId);
        model.eval();
        return model;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void CaptionLogitsEmbeddingsAndLossMatchReference(string fixture)
    {
        var dir = Path.Combine(Fixtures.ParityRoot, fixture);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(dir, "expected.safetensors"));
        using var model = LoadFixtureModel(dir, expected);
        var pixels = expected.Read("vision.pixel_values");
        var captions = expected.Read("rscapret.caption_ids");

        Fixtures.AssertClose(model.CaptionLogits(pixels, captions), expected.Read("rscapret.caption_logits"), $"{fixture} rscapret.caption_logits");
        var ret = model.RetEmbedding(captions);
        var img = model.ImageEmbedding(pixels);
        Fixtures.AssertClose(ret, expected.Read("rscapret.ret_embedding"), $"{fixture} rscapret.ret_embedding");
        Fixtures.AssertClose(img, expected.Read("rscapret.image_embedding"), $"{fixture} rscapret.image_embedding");
        var logits = model.LogitsPerImage(img, ret);
        Fixtures.AssertClose(logits, expected.Read("rscapret.logits_per_image"), $"{fixture} rscapret.logits_per_image");
        Fixtures.AssertClose(Losses.InfoNce(logits).reshape(1), expected.Read("rscapret.infonce"), $"{fixture} rscapret.infonce");
    }
}
